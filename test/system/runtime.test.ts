// The generic C++ runtime (runtime/core/, with the CPU backend's runtime/cpu/ and one rank's runtime/comm/) around a hand-written plan (test/fixtures/tiny_plan.cpp: a
// bigram model with a per-class affine head, vocab 32, batch 4 x 16), built into the standalone train
// binary. Expected values come from this file: cross-entropy, gradients and AdamW moments computed
// here in double precision, the learning-rate formula written out here, safetensors and token files
// written and parsed here.
import type { StepEvent } from "../../runtime/train_events.ts";
import { execFile, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mulberry32 as rng } from "../../src/util/random.ts";
import { resolveOptions } from "../../native/index.ts";
import { resolvedOptions, sessionPart } from "../helpers/contract.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const V = 32;
const B = 4;
const T = 16;
const N = B * T;
const PARAMS = [
  { name: "wte.weight", shape: [V, V] },
  { name: "head.bias", shape: [V] },
  { name: "head.scale", shape: [V] },
];

let dir: string;
let trainBin: string;
let trainNoClipBin: string;
let inferBin: string;
let hostScaleBin: string;

// ---- build ------------------------------------------------------------------------------------------

const run = promisify(execFile);
const CXX = ["-O2", "-march=native", "-fopenmp", "-std=c++17", "-Iruntime"];

async function compile(source: string, object: string, defines: string[] = []): Promise<string> {
  await run("g++", [...CXX, ...defines, "-c", source, "-o", object], { cwd: root });
  return object;
}

// Two at a time: the machine has two cores.
async function inPairs<T>(jobs: (() => Promise<T>)[]): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < jobs.length; i += 2) out.push(...(await Promise.all(jobs.slice(i, i + 2).map((j) => j()))));
  return out;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "stow-runtime-"));
  const cppIn = (folder: string) =>
    readdirSync(join(root, folder))
      .filter((f) => f.endsWith(".cpp"))
      .map((f) => `${folder}/${f}`);
  const sources = [...cppIn("runtime/core"), ...cppIn("runtime/cpu"), "runtime/comm/comm_single.cpp"];
  expect(sources.some((f) => f.startsWith("runtime/cpu/kernels"))).toBe(true);
  const shared = sources.filter((f) => f !== "runtime/core/train_main.cpp");
  const objects = await inPairs([
    ...shared.map((f) => () => compile(f, join(dir, f.replaceAll("/", "_") + ".o"))),
    () => compile("runtime/core/train_main.cpp", join(dir, "train_main.o")),
    () => compile("test/fixtures/tiny_plan.cpp", join(dir, "plan.o")),
    () => compile("test/fixtures/tiny_plan.cpp", join(dir, "plan_noclip.o"), ["-DTINY_PLAN_NO_CLIP"]),
    () => compile("test/fixtures/tiny_plan.cpp", join(dir, "plan_infer.o"), ["-DTINY_INFER_MAIN"]),
    () => compile("test/fixtures/tiny_plan.cpp", join(dir, "plan_host_scale.o"), ["-DTINY_PLAN_HOST_SCALE"]),
  ]);
  const runtimeObjects = objects.slice(0, shared.length);
  const link = (out: string, extra: string[]) =>
    run("g++", ["-fopenmp", "-o", out, ...extra, ...runtimeObjects, "-lopenblas"], { cwd: root });
  trainBin = join(dir, "train");
  trainNoClipBin = join(dir, "train_noclip");
  inferBin = join(dir, "tiny_infer");
  hostScaleBin = join(dir, "train_host_scale");
  await inPairs([
    () => link(hostScaleBin, [join(dir, "plan_host_scale.o"), join(dir, "train_main.o")]),
    () => link(trainBin, [join(dir, "plan.o"), join(dir, "train_main.o")]),
    () => link(trainNoClipBin, [join(dir, "plan_noclip.o"), join(dir, "train_main.o")]),
    () => link(inferBin, [join(dir, "plan_infer.o")]),
  ]);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

// ---- files ------------------------------------------------------------------------------------------

let fileCounter = 0;
function tmp(name: string): string {
  return join(dir, `${fileCounter++}-${name}`);
}

/** llm.c token file; `header` overrides magic/version/count to make corrupt files. */
function tokenFile(tokens: number[], header: { magic?: number; version?: number; count?: number } = {}): string {
  const buf = Buffer.alloc(1024 + 2 * tokens.length);
  buf.writeInt32LE(header.magic ?? 20240520, 0);
  buf.writeInt32LE(header.version ?? 1, 4);
  buf.writeInt32LE(header.count ?? tokens.length, 8);
  tokens.forEach((t, i) => buf.writeUInt16LE(t, 1024 + 2 * i));
  const path = tmp("tokens.bin");
  writeFileSync(path, buf);
  return path;
}

/** A cycle through all 32 tokens: each token has exactly one successor, so a bigram model can learn it. */
function cycleTokens(count: number): number[] {
  return Array.from({ length: count }, (_, i) => (7 * i) % V);
}

interface Tensor {
  name: string;
  shape: number[];
  data: Float32Array;
  dtype?: string;
}

function writeSafetensors(tensors: Tensor[], metadata?: Record<string, string>): string {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype ?? "F32", shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const data = tensors.map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  const path = tmp("ckpt.safetensors");
  writeFileSync(path, Buffer.concat([len, Buffer.from(json), ...data]));
  return path;
}

/** Parses a checkpoint and checks the layout rules: aligned data section, contiguous F32 tensors. */
function readSafetensors(path: string): { metadata: Record<string, string>; tensors: Map<string, Tensor> } {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  expect((8 + n) % 8).toBe(0);
  const header = JSON.parse(buf.subarray(8, 8 + n).toString("utf8")) as Record<string, unknown>;
  const metadata = header.__metadata__ as Record<string, string>;
  const entries = Object.entries(header)
    .filter(([k]) => k !== "__metadata__")
    .map(([name, e]) => ({ name, ...(e as { dtype: string; shape: number[]; data_offsets: [number, number] }) }))
    .sort((a, b) => a.data_offsets[0] - b.data_offsets[0]);
  const tensors = new Map<string, Tensor>();
  let end = 0;
  for (const e of entries) {
    expect(e.dtype).toBe("F32");
    expect(e.data_offsets[0]).toBe(end);
    end = e.data_offsets[1];
    expect(end - e.data_offsets[0]).toBe(4 * e.shape.reduce((a, b) => a * b, 1));
    const bytes = buf.subarray(8 + n + e.data_offsets[0], 8 + n + end);
    const data = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    tensors.set(e.name, { name: e.name, shape: e.shape, data });
  }
  expect(8 + n + end).toBe(buf.length);
  return { metadata, tensors };
}

// ---- running ----------------------------------------------------------------------------------------

/** A --metrics line: a step event's fields without the event's own. */
type Metrics = Omit<StepEvent, "event" | "steps">;

function train(args: string[], bin = trainBin): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(bin, ["--threads", "2", ...args], { encoding: "utf8" });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function trainOk(args: string[], bin = trainBin): string {
  const r = train(args, bin);
  if (r.status !== 0) throw new Error(`train failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

/** Runs train expecting a user error; returns the message without the "train: " prefix. */
function trainFails(args: string[], bin = trainBin): string {
  const r = train(args, bin);
  expect(r.status).toBe(2);
  expect(r.stderr).toMatch(/^train: /);
  expect(r.stderr).not.toMatch(/\n\s+at |terminate called|Aborted/);
  return r.stderr.slice("train: ".length).trim();
}

/** The binary's progress: one JSON event a line on stdout. */
function events(stdout: string): Record<string, unknown>[] {
  return stdout
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

function readMetrics(path: string): Metrics[] {
  return readFileSync(path, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Metrics);
}

// ---- the reference model ----------------------------------------------------------------------------

interface Params {
  wte: Float32Array;
  bias: Float32Array;
  scale: Float32Array;
}

function randomParams(seed: number): Params {
  const r = rng(seed);
  return {
    wte: Float32Array.from({ length: V * V }, () => 2 * r() - 1),
    bias: Float32Array.from({ length: V }, () => r() - 0.5),
    scale: Float32Array.from({ length: V }, () => 0.5 + r()),
  };
}

function paramTensors(p: Params): Tensor[] {
  return [
    { name: "wte.weight", shape: [V, V], data: p.wte },
    { name: "head.bias", shape: [V], data: p.bias },
    { name: "head.scale", shape: [V], data: p.scale },
  ];
}

function logitsOf(p: Params, tokens: number[]): number[][] {
  return tokens.map((t) => Array.from({ length: V }, (_, v) => (p.wte[t * V + v]! + p.bias[v]!) * p.scale[v]!));
}

/** Mean cross-entropy and the gradients of every parameter, in double precision. */
function lossAndGrads(p: Params, inputs: number[], targets: number[]) {
  const logits = logitsOf(p, inputs);
  const dwte = new Float64Array(V * V);
  const dbias = new Float64Array(V);
  const dscale = new Float64Array(V);
  let loss = 0;
  logits.forEach((row, n) => {
    const max = Math.max(...row);
    const sum = row.reduce((s, x) => s + Math.exp(x - max), 0);
    const lse = max + Math.log(sum);
    loss += lse - row[targets[n]!]!;
    row.forEach((x, v) => {
      const dlogit = (Math.exp(x - lse) - (v === targets[n] ? 1 : 0)) / inputs.length;
      const pre = p.wte[inputs[n]! * V + v]! + p.bias[v]!;
      const dpre = dlogit * p.scale[v]!;
      dscale[v] += dlogit * pre;
      dbias[v] += dpre;
      dwte[inputs[n]! * V + v] += dpre;
    });
  });
  const grads = [dwte, dbias, dscale];
  const norm = Math.sqrt(grads.reduce((s, g) => s + g.reduce((a, x) => a + x * x, 0), 0));
  return { loss: loss / inputs.length, grads, norm };
}

/** The batches llm.c's loader takes, in order, wrapping to the start when the next would not fit. */
function batches(tokens: number[], steps: number): { inputs: number[]; targets: number[] }[] {
  const out = [];
  let pos = 0;
  for (let s = 0; s < steps; s++) {
    if (pos + N + 1 > tokens.length) pos = 0;
    out.push({ inputs: tokens.slice(pos, pos + N), targets: tokens.slice(pos + 1, pos + N + 1) });
    pos += N;
  }
  return out;
}

function cosineLr(step: number, steps: number, warmup: number, lr: number, minLr: number): number {
  if (warmup > 0 && step <= warmup) return (lr * step) / warmup;
  const progress = Math.min(1, Math.max(0, (step - warmup) / Math.max(1, steps - warmup)));
  return minLr + 0.5 * (lr - minLr) * (1 + Math.cos(Math.PI * progress));
}

function expectClose(actual: number, expected: number, rel: number): void {
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(rel * Math.max(1e-3, Math.abs(expected)));
}

// ---- tests ------------------------------------------------------------------------------------------

describe("runtime with the tiny bigram plan", () => {
  it("learns a repeating bigram pattern", () => {
    const data = tokenFile(cycleTokens(1000));
    const metrics = tmp("metrics.jsonl");
    const stdout = trainOk(["--data", data, "--steps", "40", "--lr", "0.05", "--warmup-steps", "5", "--metrics", metrics]);
    const losses = readMetrics(metrics).map((m) => m.loss);
    expect(losses).toHaveLength(40);
    // Initial logits are near zero (std 0.02), so the first loss is that of a uniform guess.
    expectClose(losses[0]!, Math.log(V), 0.02);
    expect(losses[39]!).toBeLessThan(0.5 * losses[0]!);
    // Progress is one JSON event a line: a step event per step (the metrics' fields), then the end.
    const progress = events(stdout);
    expect(progress).toHaveLength(41);
    expect(progress[0]).toMatchObject({ event: "step", step: 1, steps: 40, loss: losses[0] });
    expect(progress[40]).toMatchObject({ event: "end", step: 40, loss: losses[39] });
  });

  it("gives bitwise identical losses when run twice", () => {
    const data = tokenFile(cycleTokens(500));
    const runs = [tmp("a.jsonl"), tmp("b.jsonl")].map((metrics) => {
      trainOk(["--data", data, "--steps", "12", "--lr", "0.02", "--metrics", metrics]);
      return readMetrics(metrics).map((m) => [m.loss, m.grad_norm]);
    });
    expect(runs[1]).toEqual(runs[0]);
  });

  it("resumes from a checkpoint exactly where an uninterrupted run would be", () => {
    const data = tokenFile(cycleTokens(300)); // 300 tokens: the loader wraps around every 4 steps
    const common = ["--data", data, "--lr", "0.03", "--lr-schedule", "constant", "--seed", "7"];
    const whole = tmp("whole.jsonl");
    trainOk([...common, "--steps", "10", "--metrics", whole]);
    const split = tmp("split.jsonl");
    const checkpoint = tmp("half.safetensors");
    trainOk([...common, "--steps", "5", "--metrics", split, "--save", checkpoint]);
    const stdout = trainOk([...common, "--steps", "10", "--metrics", split, "--resume", checkpoint]);
    expect(events(stdout)[0]).toMatchObject({ event: "step", step: 6, steps: 10 });
    const pick = (m: Metrics) => [m.step, m.loss, m.lr, m.grad_norm];
    expect(readMetrics(split).map(pick)).toEqual(readMetrics(whole).map(pick));
  });

  it("follows the cosine schedule with warm-up, also across a resume", () => {
    const data = tokenFile(cycleTokens(400));
    const [lr, minLr, warmup, steps] = [0.01, 0.001, 4, 12];
    const common = ["--data", data, "--lr", String(lr), "--min-lr", String(minLr), "--warmup-steps", String(warmup)];
    const metrics = tmp("cosine.jsonl");
    trainOk([...common, "--steps", String(steps), "--metrics", metrics]);
    const lrs = readMetrics(metrics).map((m) => m.lr);
    expect(lrs).toHaveLength(steps);
    lrs.forEach((got, i) => expectClose(got, cosineLr(i + 1, steps, warmup, lr, minLr), 1e-6));

    // A run saved at step 6 of 6 resumes as step 7 of 12: the checkpoint's step drives the schedule.
    const checkpoint = tmp("cosine.safetensors");
    trainOk([...common, "--steps", "6", "--save", checkpoint]);
    const resumed = tmp("resumed.jsonl");
    trainOk([...common, "--steps", String(steps), "--resume", checkpoint, "--metrics", resumed]);
    const after = readMetrics(resumed);
    expect(after.map((m) => m.step)).toEqual([7, 8, 9, 10, 11, 12]);
    after.forEach((m) => expectClose(m.lr, cosineLr(m.step, steps, warmup, lr, minLr), 1e-6));
  });

  it("computes the loss and gradient norm of a reference model, batch by batch", () => {
    const r = rng(11);
    const tokens = Array.from({ length: 200 }, () => Math.floor(r() * V));
    const data = tokenFile(tokens);
    const params = randomParams(5);
    const init = writeSafetensors(paramTensors(params));
    const metrics = tmp("ref.jsonl");
    const checkpoint = tmp("ref.safetensors");
    const [beta1, beta2] = [0.8, 0.9];
    // lr 0 keeps the parameters fixed, so every step is the reference model on the next batch.
    trainOk([
      "--data",
      data,
      "--init",
      init,
      "--steps",
      "5",
      "--lr",
      "0",
      "--lr-schedule",
      "constant",
      "--grad-clip",
      "0",
      "--beta1",
      String(beta1),
      "--beta2",
      String(beta2),
      "--metrics",
      metrics,
      "--save",
      checkpoint,
      "--model-file",
      "test/fixtures/tiny_plan.cpp",
      "--model-sha256",
      "c0ffee",
    ]);
    const got = readMetrics(metrics);
    const expected = batches(tokens, 5).map((b) => lossAndGrads(params, b.inputs, b.targets));
    got.forEach((m, i) => {
      expectClose(m.loss, expected[i]!.loss, 1e-5);
      expectClose(m.grad_norm!, expected[i]!.norm, 1e-4);
      expect(m.tokens).toBe(N);
    });

    const saved = readSafetensors(checkpoint);
    // 200 tokens: batches start at 0, 64, 128, then wrap to 0 and 64; the next would start at 128.
    expect(saved.metadata).toMatchObject({ format: "pt", step: "5", data_position: "128", seed: "1337" });
    // The model file is named relative to the checkpoint's own folder, so the checkpoint works from anywhere.
    expect(JSON.parse(saved.metadata.model!)).toEqual({
      model: relative(dirname(checkpoint), join(root, "test/fixtures/tiny_plan.cpp")),
      sha256: "c0ffee",
      config: { vocab: 32 },
    });
    expect([...saved.tensors.keys()].sort()).toEqual(PARAMS.flatMap((p) => [p.name, `opt.m.${p.name}`, `opt.v.${p.name}`]).sort());
    paramTensors(params).forEach((t) => expect(saved.tensors.get(t.name)!.data).toEqual(t.data));
    // AdamW's moments after five steps of known gradients (no clipping).
    PARAMS.forEach((p, k) => {
      const size = p.shape.reduce((a, b) => a * b, 1);
      const m = new Float64Array(size);
      const v = new Float64Array(size);
      for (const e of expected) {
        for (let i = 0; i < size; i++) {
          const g = e.grads[k]![i]!;
          m[i] = beta1 * m[i]! + (1 - beta1) * g;
          v[i] = beta2 * v[i]! + (1 - beta2) * g * g;
        }
      }
      const savedM = saved.tensors.get(`opt.m.${p.name}`)!.data;
      const savedV = saved.tensors.get(`opt.v.${p.name}`)!.data;
      for (let i = 0; i < size; i++) {
        expect(Math.abs(savedM[i]! - m[i]!)).toBeLessThan(1e-6 + 1e-4 * Math.abs(m[i]!));
        expect(Math.abs(savedV[i]! - v[i]!)).toBeLessThan(1e-9 + 1e-4 * Math.abs(v[i]!));
      }
    });
  });

  it("initialises from the seed, independently of the thread count", () => {
    const data = tokenFile(cycleTokens(200));
    const initOf = (seed: string, threads: string) => {
      const checkpoint = tmp("init.safetensors");
      trainOk(["--data", data, "--steps", "1", "--lr", "0", "--seed", seed, "--threads", threads, "--save", checkpoint]);
      return readSafetensors(checkpoint).tensors;
    };
    const one = initOf("42", "1");
    const two = initOf("42", "2");
    const other = initOf("43", "2");
    for (const p of PARAMS) expect(two.get(p.name)!.data).toEqual(one.get(p.name)!.data);
    expect(other.get("wte.weight")!.data).not.toEqual(one.get("wte.weight")!.data);

    const wte = [...one.get("wte.weight")!.data];
    const mean = wte.reduce((a, b) => a + b, 0) / wte.length;
    const std = Math.sqrt(wte.reduce((a, b) => a + (b - mean) ** 2, 0) / wte.length);
    expect(Math.abs(mean)).toBeLessThan(0.003); // 1024 draws of N(0, 0.02): mean's sd is 0.000625
    expect(std).toBeGreaterThan(0.018);
    expect(std).toBeLessThan(0.022);
    expect([...one.get("head.bias")!.data].every((x) => x === 0)).toBe(true);
    expect([...one.get("head.scale")!.data].every((x) => x === 1)).toBe(true);
  });

  it("writes every metrics key, and null grad_norm for a plan without clipping", () => {
    const tokens = cycleTokens(1000);
    const data = tokenFile(tokens);
    const metrics = tmp("keys.jsonl");
    trainOk(["--data", data, "--steps", "3", "--metrics", metrics]);
    const info = tinyInfo();
    for (const m of readMetrics(metrics)) {
      expect(Object.keys(m).sort()).toEqual(
        [
          "d2h_bytes",
          "device_budget_bytes",
          "device_peak_bytes",
          "grad_norm",
          "h2d_bytes",
          "host_peak_bytes",
          "loss",
          "lr",
          "step",
          "step_seconds",
          "tokens",
          "tokens_per_s",
          "transfer_wait_seconds",
        ].sort(),
      );
      expect(m.grad_norm).toBeGreaterThan(0);
      expect(m.tokens).toBe(N);
      expect(m.step_seconds).toBeGreaterThan(0);
      expectClose(m.tokens_per_s, N / m.step_seconds, 1e-3);
      // Kernels and the runtime mark what they write; the fixture's plan predicts its last byte.
      expect(m.device_peak_bytes).toBe(info.predictedTrainPeak);
      // The tokens stay resident as int32; the rest is staging.
      expect(m.host_peak_bytes).toBeGreaterThanOrEqual(4 * tokens.length);
      expect(m.host_peak_bytes).toBeLessThan(8 * tokens.length);
    }

    const noClip = tmp("noclip.jsonl");
    trainOk(["--data", data, "--steps", "2", "--grad-clip", "0", "--metrics", noClip], trainNoClipBin);
    for (const m of readMetrics(noClip)) expect(m.grad_norm).toBeNull();
  });

  it("runs the inference program through stow_infer", () => {
    const params = randomParams(9);
    const init = writeSafetensors(paramTensors(params));
    const tokens = Array.from({ length: 16 }, (_, i) => (5 * i + 3) % V);
    for (const position of [0, 6, 15]) {
      const r = spawnSync(inferBin, [init, String(position), ...tokens.map(String)], { encoding: "utf8" });
      expect(r.stderr).toBe("");
      const [infoLine, ...values] = r.stdout.trim().split("\n");
      expect(infoLine!.split(" ").slice(1, 4).map(Number)).toEqual([V, B, T]);
      expect(Number(infoLine!.split(" ")[8])).toBe(V * V + 2 * V);
      const expected = logitsOf(params, tokens)[position]!;
      expect(values).toHaveLength(V);
      values.forEach((x, i) => expectClose(Number(x), expected[i]!, 1e-6));
    }

    const bad = spawnSync(inferBin, [init, "0", ...tokens.map(String).slice(0, 15), "40"], { encoding: "utf8" });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/token 40 at position 15 is outside the model's vocabulary of 32 tokens/);
    const outside = spawnSync(inferBin, [init, "16", ...tokens.map(String)], { encoding: "utf8" });
    expect(outside.status).toBe(2);
    expect(outside.stderr).toMatch(/position 16 is outside the inference window of 16 tokens/);
  });
});

function tinyInfo(): { predictedTrainPeak: number; predictedInferPeak: number } {
  const init = writeSafetensors(paramTensors(randomParams(1)));
  const r = spawnSync(inferBin, [init, "0", ...Array.from({ length: 16 }, () => "0")], { encoding: "utf8" });
  const fields = r.stdout.split("\n")[0]!.split(" ").map(Number);
  return { predictedTrainPeak: fields[6]!, predictedInferPeak: fields[7]! };
}

describe("runtime errors", () => {
  const good = () => tokenFile(cycleTokens(300));

  it("refuses a plan whose device node writes offloaded model data in host memory", () => {
    expect(trainFails(["--data", good(), "--steps", "1", "--grad-clip", "1"], hostScaleBin)).toMatch(
      /the plan breaks residency: device node adamw_scale writes host memory/,
    );
  });

  it("rejects corrupt token files, naming the problem and where", () => {
    const tokens = cycleTokens(300);
    let path = tokenFile(tokens, { magic: 12345 });
    expect(trainFails(["--data", path])).toBe(`${path}: not an llm.c token file: magic at byte offset 0 is 12345, expected 20240520`);
    path = tokenFile(tokens, { version: 2 });
    expect(trainFails(["--data", path])).toMatch(/version 2 at byte offset 4, expected 1/);
    path = tokenFile(tokens, { count: 1000 });
    expect(trainFails(["--data", path])).toMatch(
      new RegExp(`^${path}: token count 1000 at byte offset 8 needs 3024 bytes .* but the file has 1624 bytes$`),
    );
    path = tmp("short.bin");
    writeFileSync(path, Buffer.alloc(100));
    expect(trainFails(["--data", path])).toMatch(/too short for an llm.c token file: 100 bytes/);
    const outside = [...tokens];
    outside[17] = 40;
    path = tokenFile(outside);
    expect(trainFails(["--data", path])).toMatch(
      /token 40 at index 17 \(byte offset 1058\) is outside the model's vocabulary of 32 tokens/,
    );
    path = tokenFile(cycleTokens(N));
    expect(trainFails(["--data", path])).toMatch(/64 tokens are too few for one batch of 4 x 16 \(needs 65/);
    expect(trainFails(["--data", join(dir, "missing.bin")])).toMatch(/missing\.bin: cannot open token file/);
  });

  it("rejects truncated and malformed safetensors", () => {
    const data = good();
    const valid = readFileSync(writeSafetensors(paramTensors(randomParams(2))));
    const cut = (bytes: number) => {
      const path = tmp("cut.safetensors");
      writeFileSync(path, valid.subarray(0, bytes));
      return path;
    };
    let path = cut(5);
    expect(trainFails(["--data", data, "--init", path])).toBe(
      `${path}: not a safetensors file: 5 bytes, shorter than the 8-byte header length`,
    );
    path = cut(40);
    expect(trainFails(["--data", data, "--init", path])).toMatch(
      new RegExp(`^${path}: not a safetensors file, or truncated: the header length at byte offset 0 is \\d+ bytes, but only 32`),
    );
    path = cut(valid.length - 10);
    expect(trainFails(["--data", data, "--init", path])).toMatch(
      /tensor 'head.scale' has data_offsets \[4224, 4352\] outside the data section of 4342 bytes/,
    );
    path = tmp("badjson.safetensors");
    const json = '{"wte.weight": [1, 2}  ';
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    writeFileSync(path, Buffer.concat([len, Buffer.from(json)]));
    expect(trainFails(["--data", data, "--init", path])).toBe(
      `${path}: invalid JSON in the safetensors header at byte offset 28: expected ',' or ']' in an array`,
    );
  });

  it("rejects overlapping tensors, as the JS reader does", () => {
    const [wte, bias, scale] = paramTensors(randomParams(2));
    const bytes = readFileSync(writeSafetensors([wte!, bias!, scale!]));
    const n = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString("utf8"));
    header["head.scale"].data_offsets = [4096, 4224]; // head.bias's bytes
    const json = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    const path = tmp("overlap.safetensors");
    writeFileSync(path, Buffer.concat([len, json, bytes.subarray(8 + n)]));
    expect(trainFails(["--data", good(), "--init", path])).toMatch(
      new RegExp(`^${path}: tensor 'head\\.scale' at byte offset ${8 + json.length + 4096} overlaps tensor 'head\\.bias'`),
    );
  });

  it("SIGTERM ends the train binary after a step, saved, with exit 143", async () => {
    const checkpoint = tmp("sigterm.safetensors");
    const child = spawn(trainBin, ["--threads", "1", "--data", good(), "--steps", "100000000", "--save", checkpoint]);
    let stdout = "";
    child.stdout.on("data", (d) => (stdout += d));
    while ((stdout.match(/^\{"event":"step"/gm) ?? []).length < 10) await new Promise((r) => setTimeout(r, 5));
    child.kill("SIGTERM");
    const status = await new Promise((r) => child.on("close", r));
    expect(status).toBe(143);
    const [saved, stopped] = events(stdout).slice(-2);
    expect(stopped, stdout.slice(-300)).toMatchObject({ event: "stopped", signal: 15 });
    expect(readSafetensors(checkpoint).metadata.step).toBe(String(stopped!.step));
    expect(saved).toEqual({ event: "saved", path: checkpoint, step: stopped!.step });
  });

  it("refuses to save a state that is not finite: exit 3, the checkpoint untouched", () => {
    const checkpoint = tmp("finite.safetensors");
    trainOk(["--data", good(), "--steps", "2", "--save", checkpoint]);
    const before = readFileSync(checkpoint);
    const r = train([
      "--data",
      good(),
      "--steps",
      "3",
      "--resume",
      checkpoint,
      "--save",
      checkpoint,
      "--lr",
      "3.4e38",
      "--lr-schedule",
      "constant",
    ]);
    expect(r.status, r.stderr).toBe(3);
    expect(r.stderr).toMatch(
      /not saved: the state after step 3's update is not finite \(tensor '[^']+' holds (NaN|[+-]inf) at element \d+\)/,
    );
    expect(readFileSync(checkpoint).equals(before)).toBe(true);
  });

  it("--save-every with --keep 2 keeps the two newest step copies beside the newest checkpoint", () => {
    const checkpoint = tmp("kept.safetensors");
    trainOk(["--data", good(), "--steps", "7", "--save", checkpoint, "--save-every", "2", "--keep", "2"]);
    const base = checkpoint.replace(/\.safetensors$/, "");
    const copies = readdirSync(dir)
      .filter((f) => f.startsWith(base.slice(dir.length + 1) + ".step"))
      .sort();
    expect(copies).toEqual([`${base.slice(dir.length + 1)}.step6.safetensors`, `${base.slice(dir.length + 1)}.step7.safetensors`]);
    expect(readFileSync(`${base}.step7.safetensors`).equals(readFileSync(checkpoint))).toBe(true);
    expect(readSafetensors(`${base}.step6.safetensors`).metadata.step).toBe("6");
  });

  it("--save-every-minutes saves on the clock", () => {
    const checkpoint = tmp("clock.safetensors");
    // 60 microseconds: every step takes longer, so every step but the last (saved at the end) is a save.
    trainOk(["--data", good(), "--steps", "5", "--save", checkpoint, "--save-every-minutes", "0.000001", "--keep", "10"]);
    const stem = checkpoint.slice(dir.length + 1).replace(/\.safetensors$/, "");
    const steps = readdirSync(dir)
      .filter((f) => f.startsWith(`${stem}.step`))
      .map((f) => Number(/\.step(\d+)\./.exec(f)![1]));
    expect(steps.sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5]);
  });

  it("rejects safetensors of another model", () => {
    const data = good();
    const [wte, bias, scale] = paramTensors(randomParams(3));
    let path = writeSafetensors([wte!, bias!]);
    expect(trainFails(["--data", data, "--init", path])).toBe(`${path}: missing tensor 'head.scale' (the model expects F32 of shape [32])`);
    path = writeSafetensors([{ name: "wte.weight", shape: [16, 32], data: new Float32Array(512) }, bias!, scale!]);
    expect(trainFails(["--data", data, "--init", path])).toBe(
      `${path}: tensor 'wte.weight' has shape [16, 32] in the file, but the model expects [32, 32]`,
    );
    path = writeSafetensors([wte!, bias!, { ...scale!, dtype: "I32" }]);
    expect(trainFails(["--data", data, "--init", path])).toMatch(/tensor 'head.scale' has dtype I32; only F32/);
    path = writeSafetensors([wte!, bias!, scale!, { name: "blocks.0.weight", shape: [2], data: new Float32Array(2) }]);
    expect(trainFails(["--data", data, "--init", path])).toMatch(/tensor 'blocks.0.weight' is not a parameter of this model/);
    // The tied head of a nanoGPT state_dict and a stow checkpoint's optimizer state are not errors.
    path = writeSafetensors([wte!, bias!, scale!, { name: "lm_head.weight", shape: [V, V], data: wte!.data }]);
    trainOk(["--data", data, "--init", path, "--steps", "1"]);

    // Resuming needs a stow checkpoint of the same model.
    expect(trainFails(["--data", data, "--resume", path])).toMatch(/has no "model"; is it a checkpoint written by stow save/);
    const state = [wte!, bias!, scale!].flatMap((t) => [t, { ...t, name: `opt.m.${t.name}` }, { ...t, name: `opt.v.${t.name}` }]);
    path = writeSafetensors(state, { step: "3", data_position: "0", model: '{"model":"other.ts"}' });
    expect(trainFails(["--data", data, "--resume", path])).toBe(
      `${path}: __metadata__ "model" is {"model":"other.ts"}, expected a JSON object with a "config"`,
    );
    // Another config of the model: refused. The file's path (it may have moved) is not compared.
    path = writeSafetensors(state, { step: "3", data_position: "0", model: '{"model":"elsewhere.ts","config":{"vocab":64}}' });
    expect(trainFails(["--data", data, "--resume", path])).toBe(
      `${path} was saved with model config {"vocab":64}, but this run's config is {"vocab":32}`,
    );
    path = writeSafetensors(state, { step: "3", data_position: "0", model: '{"model":"elsewhere.ts","config":{"vocab":32}}' });
    trainOk(["--data", data, "--resume", path, "--steps", "4"]);
  });

  it("applies the run contract's defaults, as the addon does (--print-options)", () => {
    // train() passes --threads 2.
    const defaults = JSON.parse(trainOk(["--print-options"]));
    expect(defaults).toEqual(resolvedOptions({ threads: 2 }));
    expect(sessionPart(defaults)).toEqual(resolveOptions({ threads: 2 }));
    const given = JSON.parse(trainOk(["--print-options", "--lr", "0.01", "--steps", "100", "--save", "s.safetensors"]));
    expect(given).toEqual(resolvedOptions({ threads: 2, lr: 0.01, steps: 100, save: "s.safetensors" }));
  });

  it("rejects bad options and flags", () => {
    const data = good();
    expect(trainFails(["--data", data, "--grad-clip", "1"], trainNoClipBin)).toMatch(
      /grad_clip is 1 but this plan was compiled without gradient clipping/,
    );
    expect(trainFails(["--data", data, "--steps", "ten"])).toBe("--steps expects an integer, got 'ten'");
    expect(trainFails(["--data", data, "--bogus", "1"])).toBe("unknown flag --bogus (see --help)");
    expect(trainFails(["--steps", "3"])).toBe("--data FILE is required (see --help)");
    expect(trainFails(["--data", data, "--beta2", "1"])).toBe("beta2 must lie in [0, 1), got 1");
    expect(trainFails(["--data", data, "--lr-schedule", "linear"])).toBe("--lr-schedule must be constant or cosine, got 'linear'");
  });
});
