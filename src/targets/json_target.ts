// A target profile given as a JSON file, e.g.
//   { "description": "my card", "device_memory": "12GiB", "matmul_flops": 20e12,
//     "memory_bandwidth": 500e9, "link_bandwidth": 12e9, "host_bandwidth": 30e9 }
// Rates are per second (FLOP/s, bytes/s); device_memory is bytes or a size such as "12GiB". Optional,
// as the `cpu` target measures them (ir/cost_model.ts's Machine says what each means):
//   "product_rates": [[flops of one call, FLOP/s], ...] by ascending size,
//   "stream_rates": [[bytes a kernel moves, bytes/s], ...] by ascending size,
//   "attention_rates": { "T": [...], "D": [...], "forward": [[FLOP/s at T[i], D[j]], ...], "backward": ... },
//   "softmax_rate": logits per second,
//   "element_rates": { "op": elements of its first input per second, ... };
// and, for the collectives of --tp and --dp, "network_bandwidth" (bytes/s) and "network_latency" (seconds a call).
// Every mistake is a UserError naming the file and the field.
import { readFileSync } from "node:fs";
import { UserError } from "../../base/errors.ts";
import { parseSize } from "../../base/units.ts";
import { OPS } from "../../ir/ops.ts";
import type { AttentionRates, Machine, SizedRate } from "../../ir/cost_model.ts";
import type { Target } from "./target.ts";

const RATES = {
  matmul_flops: "matmulFlops",
  memory_bandwidth: "memoryBandwidth",
  link_bandwidth: "linkBandwidth",
  host_bandwidth: "hostBandwidth",
} as const satisfies Record<string, keyof Machine>;
const OPTIONAL = [
  "description",
  "product_rates",
  "stream_rates",
  "attention_rates",
  "softmax_rate",
  "element_rates",
  "network_bandwidth",
  "network_latency",
];
const FIELDS = ["device_memory", ...Object.keys(RATES), ...OPTIONAL];

export function readTargetFile(file: string): Target {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new UserError(`--target ${file}: cannot read the profile (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UserError(`--target ${file}: not valid JSON (${(e as Error).message})`);
  }
  return parseTarget(file, json);
}

export function parseTarget(file: string, json: unknown): Target {
  const where = `--target ${file}`;
  if (typeof json !== "object" || json === null || Array.isArray(json))
    throw new UserError(`${where}: expected a JSON object with the fields ${FIELDS.join(", ")}`);
  const o = json as Record<string, unknown>;
  const unknown = Object.keys(o).filter((k) => !FIELDS.includes(k));
  if (unknown.length > 0)
    throw new UserError(`${where}: unknown field ${unknown.map((k) => `"${k}"`).join(", ")}; the fields are ${FIELDS.join(", ")}`);
  const missing = FIELDS.filter((k) => !OPTIONAL.includes(k) && o[k] === undefined);
  if (missing.length > 0) throw new UserError(`${where}: missing field ${missing.map((k) => `"${k}"`).join(", ")}`);
  if (o.description !== undefined && typeof o.description !== "string") throw new UserError(`${where}: "description" must be a string`);
  const machine = Object.fromEntries(
    Object.entries(RATES).map(([field, key]) => {
      return [key, positive(`${where}: "${field}"`, o[field])];
    }),
  ) as unknown as Machine;
  if (o.product_rates !== undefined)
    machine.productRates = sizedRates(`${where}: "product_rates"`, o.product_rates, "flops of one call, FLOP/s");
  if (o.stream_rates !== undefined) machine.streamRates = sizedRates(`${where}: "stream_rates"`, o.stream_rates, "bytes moved, bytes/s");
  if (o.attention_rates !== undefined) machine.attentionRates = attentionRates(`${where}: "attention_rates"`, o.attention_rates);
  if (o.softmax_rate !== undefined) machine.softmaxRate = positive(`${where}: "softmax_rate"`, o.softmax_rate);
  if (o.element_rates !== undefined) machine.elementRates = elementRates(`${where}: "element_rates"`, o.element_rates);
  if (o.network_latency !== undefined && o.network_bandwidth === undefined)
    throw new UserError(`${where}: "network_latency" needs "network_bandwidth" too`);
  if (o.network_bandwidth !== undefined) machine.networkBandwidth = positive(`${where}: "network_bandwidth"`, o.network_bandwidth);
  if (o.network_latency !== undefined) machine.networkLatency = positive(`${where}: "network_latency"`, o.network_latency, " (seconds)");
  return {
    name: file,
    description: (o.description as string | undefined) ?? file,
    deviceMemory: deviceMemory(where, o.device_memory),
    machine,
  };
}

function positive(what: string, v: unknown, unit = " (per second)"): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0)
    throw new UserError(`${what} must be a positive number${unit}, got ${JSON.stringify(v)}`);
  return v;
}

function sizedRates(what: string, v: unknown, pair: string): SizedRate[] {
  const pairs = Array.isArray(v) && v.length > 0 && v.every((p) => Array.isArray(p) && p.length === 2);
  if (!pairs) throw new UserError(`${what} must be a non-empty list of [${pair}] pairs`);
  const rates = (v as unknown[][]).map(([size, rate], i) => ({
    size: positive(`${what}[${i}][0]`, size, ""),
    rate: positive(`${what}[${i}][1]`, rate),
  }));
  if (rates.some((r, i) => i > 0 && r.size <= rates[i - 1].size)) throw new UserError(`${what} must be in ascending order of size`);
  return rates;
}

function elementRates(what: string, v: unknown): Record<string, number> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new UserError(`${what} must be an object of op names and rates`);
  return Object.fromEntries(
    Object.entries(v).map(([op, r]) => {
      if (!Object.hasOwn(OPS, op)) throw new UserError(`${what}: unknown op "${op}"`);
      return [op, positive(`${what}.${op}`, r)];
    }),
  );
}

function attentionRates(what: string, v: unknown): AttentionRates {
  if (typeof v !== "object" || v === null || Array.isArray(v))
    throw new UserError(`${what} must be an object with T, D, forward and backward`);
  const o = v as Record<string, unknown>;
  const axis = (name: "T" | "D") => {
    const a = o[name];
    if (!Array.isArray(a) || a.length === 0 || !a.every((x, i) => Number.isInteger(x) && x > 0 && (i === 0 || x > a[i - 1])))
      throw new UserError(`${what}.${name} must be a non-empty ascending list of positive whole numbers`);
    return a as number[];
  };
  const T = axis("T"),
    D = axis("D");
  const grid = (name: "forward" | "backward") => {
    const g = o[name];
    if (!Array.isArray(g) || g.length !== T.length || !g.every((row) => Array.isArray(row) && row.length === D.length))
      throw new UserError(`${what}.${name} must be ${T.length} rows (one per T) of ${D.length} rates (one per D)`);
    return (g as unknown[][]).map((row, i) => row.map((x, j) => positive(`${what}.${name}[${i}][${j}]`, x)));
  };
  return { T, D, forward: grid("forward"), backward: grid("backward") };
}

function deviceMemory(where: string, v: unknown): number {
  if (typeof v === "string") return parseSize(`${where}: "device_memory"`, v);
  if (typeof v === "number" && Number.isSafeInteger(v) && v > 0) return v;
  throw new UserError(`${where}: "device_memory" must be a whole number of bytes or a size such as "12GiB", got ${JSON.stringify(v)}`);
}

/** The JSON form of a target, which parseTarget reads back. */
export function targetJson(t: Target): Record<string, unknown> {
  const m = t.machine;
  return {
    description: t.description,
    device_memory: t.deviceMemory,
    ...Object.fromEntries(Object.entries(RATES).map(([field, key]) => [field, m[key]])),
    ...(m.productRates && { product_rates: m.productRates.map((r) => [r.size, r.rate]) }),
    ...(m.streamRates && { stream_rates: m.streamRates.map((r) => [r.size, r.rate]) }),
    ...(m.attentionRates && { attention_rates: m.attentionRates }),
    ...(m.softmaxRate && { softmax_rate: m.softmaxRate }),
    ...(m.elementRates && { element_rates: m.elementRates }),
  };
}
