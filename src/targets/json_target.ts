// A target profile given as a JSON file, e.g.
//   { "description": "my card", "device_memory": "12GiB", "matmul_flops": 20e12,
//     "memory_bandwidth": 500e9, "link_bandwidth": 12e9, "host_bandwidth": 30e9 }
// Rates are per second (FLOP/s, bytes/s); device_memory is bytes or a size such as "12GiB". Every
// mistake is a UserError naming the file and the field.
import { readFileSync } from "node:fs";
import { UserError } from "../cli/errors.ts";
import { parseSize } from "../cli/options.ts";
import type { Machine } from "../../ir/cost_model.ts";
import type { Target } from "./target.ts";

const RATES = {
  matmul_flops: "matmulFlops",
  memory_bandwidth: "memoryBandwidth",
  link_bandwidth: "linkBandwidth",
  host_bandwidth: "hostBandwidth",
} as const satisfies Record<string, keyof Machine>;
const FIELDS = ["description", "device_memory", ...Object.keys(RATES)];

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
  if (unknown.length > 0) throw new UserError(`${where}: unknown field ${unknown.map((k) => `"${k}"`).join(", ")}; the fields are ${FIELDS.join(", ")}`);
  const missing = FIELDS.filter((k) => k !== "description" && o[k] === undefined);
  if (missing.length > 0) throw new UserError(`${where}: missing field ${missing.map((k) => `"${k}"`).join(", ")}`);
  if (o.description !== undefined && typeof o.description !== "string") throw new UserError(`${where}: "description" must be a string`);
  const machine = Object.fromEntries(Object.entries(RATES).map(([field, key]) => {
    const v = o[field];
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0)
      throw new UserError(`${where}: "${field}" must be a positive number (per second), got ${JSON.stringify(v)}`);
    return [key, v];
  })) as unknown as Machine;
  return { name: file, description: (o.description as string | undefined) ?? file, deviceMemory: deviceMemory(where, o.device_memory), machine };
}

function deviceMemory(where: string, v: unknown): number {
  if (typeof v === "string") return parseSize(`${where}: "device_memory"`, v);
  if (typeof v === "number" && Number.isSafeInteger(v) && v > 0) return v;
  throw new UserError(`${where}: "device_memory" must be a whole number of bytes or a size such as "12GiB", got ${JSON.stringify(v)}`);
}

/** The JSON form of a target, which parseTarget reads back. */
export function targetJson(t: Target): Record<string, string | number> {
  return {
    description: t.description, device_memory: t.deviceMemory,
    ...Object.fromEntries(Object.entries(RATES).map(([field, key]) => [field, t.machine[key]])),
  };
}
