// The CUDA backend's plans, run: `--backend cuda --emulate` compiles the generated plan.cu and
// runtime/cuda/*.cu with g++ against the emulated CUDA target (runtime/cuda/emulate/), so every kernel,
// stream, event, copy, cuBLAS call and NCCL collective of a training step executes here, and is checked
// against the CPU backend, which shares none of that code. The emulation's stream race checker watches
// every run: a race fails it. Small configs (vocabulary 512, on a Markov corpus), since each CUDA
// thread is a fiber on the CPU.
import { TINY_GPT } from "../helpers/stow_commands.ts";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { buildPlan } from "../../codegen/build.ts";
import { makeMarkovCorpus } from "../../src/data/synthetic.ts";
import { writeTokenFile } from "../../src/data/token_file.ts";
import { readMetrics, repoRoot, stow } from "../helpers/run.ts";
import { mpirunArgs } from "../../src/util/mpirun.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "stow-emulate-"));
const data = path.join(dir, "markov512.bin");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const tiny = [...TINY_GPT, "--set", "seq=32", "--batch", "4", "--threads", "2"];
// GPT-2 mini's four blocks and width at vocabulary 512: big enough to offload chunk by chunk and to move
// a block's activations.
const mini = ["samples/gpt2.ts", "--preset", "mini", "--set", "vocab=512", "--batch", "4", "--seq", "64", "--threads", "2"];
const emulated = (precision: "fp32" | "bf16") => ["--backend", "cuda", "--emulate", "--precision", precision];

type Metrics = Record<string, number>[];

function train(args: string[], name: string, steps = 10): Metrics {
  const metrics = path.join(dir, `${name}.jsonl`);
  const r = stow(["train", ...args, "--steps", String(steps), "--data", data, "--no-sample", "--metrics", metrics]);
  expect(r.status, r.stderr).toBe(0);
  expect(r.stderr).toBe("");
  return readMetrics(metrics);
}

function planJson(args: string[]) {
  const r = stow(["plan", ...args, "--json"]);
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

function expectClose(actual: number[], expected: number[], relative: number): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((a, i) =>
    expect(Math.abs(a - expected[i]) / Math.abs(expected[i]), `step ${i + 1}: ${a} vs ${expected[i]}`).toBeLessThanOrEqual(relative),
  );
}

const losses = (m: Metrics) => m.map((s) => s.loss);

let cpuTiny: Metrics, emulatedTiny: Metrics;

beforeAll(() => {
  writeTokenFile(data, makeMarkovCorpus({ vocab: 512, k: 2, length: 100_000, seed: 3 }).tokens);
  cpuTiny = train(tiny, "cpu-tiny");
  emulatedTiny = train([...tiny, ...emulated("fp32")], "emulated-tiny");
});

describe("the emulated CUDA target", () => {
  test("gpt2 tiny in fp32: 10 losses within 1e-5 of the CPU backend, at the planned device peak", () => {
    expectClose(losses(emulatedTiny), losses(cpuTiny), 1e-5);
    expectClose(
      emulatedTiny.map((m) => m.grad_norm),
      cpuTiny.map((m) => m.grad_norm),
      1e-4,
    );
    const plan = planJson([...tiny, ...emulated("fp32")]);
    for (const m of emulatedTiny) expect(m.device_peak_bytes).toBe(plan.device_peak_bytes);
    expect(losses(emulatedTiny).at(-1)!).toBeLessThan(losses(emulatedTiny)[0]);
  });

  test("bf16 matmuls: 10 losses within 2e-2 of fp32, and not fp32's", () => {
    const bf16 = train([...tiny, ...emulated("bf16")], "emulated-tiny-bf16");
    expectClose(losses(bf16), losses(emulatedTiny), 2e-2);
    // The inputs of every product were rounded to bfloat16: the losses must show it.
    expect(losses(bf16)).not.toEqual(losses(emulatedTiny));
  });

  test("offloaded at 30% of the resident peak, a block's activations moved: bitwise the resident run, race checker silent", () => {
    const resident = planJson([...mini, ...emulated("fp32")]);
    const budget = Math.floor(0.3 * resident.device_peak_bytes);
    const offloadFlags = ["--device-memory", String(budget), "--checkpoint", "blocks", "--move-activations", "1"];
    const plan = planJson([...mini, ...emulated("fp32"), ...offloadFlags]);
    expect(plan.offload.model_data_on_host).toBe(true);
    expect(plan.arena_bytes).toBeLessThanOrEqual(budget);

    const a = train([...mini, ...emulated("fp32")], "emulated-mini", 6);
    const b = train([...mini, ...emulated("fp32"), ...offloadFlags], "emulated-mini-30", 6);
    expect(losses(b)).toEqual(losses(a));
    expect(b.map((m) => m.grad_norm)).toEqual(a.map((m) => m.grad_norm));
    for (const m of b) {
      expect(m.device_peak_bytes).toBe(plan.device_peak_bytes);
      expect(m.h2d_bytes + m.d2h_bytes).toBe(plan.offload.transfer_bytes_per_step);
    }
  });

  test("the race checker catches a plan with one event wait removed, naming both nodes", async () => {
    const resident = planJson([...tiny, ...emulated("fp32")]);
    const out = path.join(dir, "broken");
    const budget = String(Math.floor(0.6 * resident.device_peak_bytes));
    // --checkpoint none: model data offloaded, nothing recomputed, so the step has copies to wait for.
    const compiled = stow(["compile", ...tiny, ...emulated("fp32"), "--device-memory", budget, "--checkpoint", "none", "-o", out]);
    expect(compiled.status, compiled.stderr).toBe(0);
    const source = readFileSync(path.join(out, "plan.cu"), "utf8");
    // The first wait of the training step: the compute stream no longer waits for that copy.
    const wait = /^ {2}stow::cuda::wait_transfer\(c, tk\[\d+\]\);\n/m;
    expect(source).toMatch(wait);
    const broken = await buildPlan({ planCpp: source.replace(wait, ""), backend: "cuda", emulate: true });
    const intact = await buildPlan({ planCpp: source, backend: "cuda", emulate: true });

    const run = (binary: string) => spawnSync(binary, ["--data", data, "--steps", "1"], { cwd: repoRoot, encoding: "utf8" });
    const good = run(intact.trainBinPath);
    expect(good.status, good.stderr).toBe(0);
    const bad = run(broken.trainBinPath);
    expect(bad.status).not.toBe(0);
    // The node that read too early, and the copy it raced with, each with its model line.
    expect(bad.stderr).toMatch(/race on device allocation/);
    expect(bad.stderr).toMatch(/node [a-z_]+ %\d+ at samples\/gpt2\.ts:\d+:\d+ on stream \d+ reads it/);
    expect(bad.stderr).toMatch(
      /the copy to the device of \d+ bytes \(node chunk_h2d %\d+ at samples\/gpt2\.ts:\d+:\d+\) on stream \d+ wrote it/,
    );
  });

  /**
   * Compiles a 2-rank plan, takes its collectives' waits out (`wait` replaced by `replacement`), builds it
   * for the emulator and runs one step: the run must fail with a race. Its stderr, for the names.
   */
  async function runWithoutWaits(args: string[], name: string, wait: RegExp, replacement: string) {
    const out = path.join(dir, name);
    const compiled = stow(["compile", ...args, "-o", out]);
    expect(compiled.status, compiled.stderr).toBe(0);
    const source = readFileSync(path.join(out, "plan.cu"), "utf8");
    expect(source).toMatch(wait);
    const broken = await buildPlan({ planCpp: source.replace(wait, replacement), backend: "cuda", emulate: true, mpi: true });
    const bad = spawnSync("mpirun", mpirunArgs(2, [broken.trainBinPath, "--data", data, "--steps", "1", "--threads", "1"]), {
      cwd: repoRoot,
      encoding: "utf8",
    });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/race on device allocation/);
    return bad;
  }

  test("the race checker catches a ZeRO 3 gather read before its wait, naming the reader and the NCCL call", async () => {
    // The training step's first gather: its chunk is read with no event ordering it after the NCCL call.
    const wait = /^ {2}stow::cuda::wait_collective\(c, tk\[\d+\]\);\n/m;
    const bad = await runWithoutWaits([...tiny, ...emulated("fp32"), "--dp", "2", "--zero", "3"], "broken-gather", wait, "");
    expect(bad.stderr).toMatch(/node [a-z_]+ %\d+ at samples\/gpt2\.ts:\d+:\d+ on stream \d+ (reads|writes) it/);
    expect(bad.stderr).toMatch(/ncclAllGather \(node zero_all_gather %\d+ at samples\/gpt2\.ts:\d+:\d+\) on stream \d+ wrote it/);
  });

  test("--dp 2 --zero 0 through the NCCL stand-in, gradients all-reduced beside the backward: the CPU backend's losses, peaks as planned; a gradient read before its wait is a race", async () => {
    const zero0 = [...tiny, ...emulated("fp32"), "--dp", "2", "--threads", "1"];
    const run = train(zero0, "emulated-tiny-dp2-zero0");
    expectClose(losses(run), losses(cpuTiny), 1e-5);
    const plan = planJson(zero0);
    for (const m of run) expect(m.rank_device_peak_bytes).toEqual(Array(2).fill(plan.device_peak_bytes));
    // Every gradient's wait gone (one alone is covered by the later waits, which order the communication
    // stream's earlier all-reduces too): the gradient norm reads what the NCCL calls write, unordered.
    const wait = /^ {2}stow::cuda::dp_all_reduce_wait\(c, (tk\[\d+\]), [^\n]*\n/gm;
    const bad = await runWithoutWaits(zero0, "broken-all-reduce", wait, "  (void)$1;\n");
    expect(bad.stderr).toMatch(/ncclAllReduce \(node all_reduce %\d+ at samples\/gpt2\.ts:\d+:\d+\) on stream \d+ wrote it/);
  });

  test("--tp 2 through the NCCL stand-in: 10 losses within 1e-5 of the CPU backend at TP 1", () => {
    const tp2 = train([...tiny, ...emulated("fp32"), "--tp", "2", "--threads", "1"], "emulated-tiny-tp2");
    expectClose(losses(tp2), losses(cpuTiny), 1e-5);
  });

  test("--dp 2 --tp 2 --zero 3 through the NCCL stand-in (a communicator per group): the CPU backend's losses, peaks as planned", () => {
    // The global batch is tiny's 4 at every degree: each data-parallel rank runs 2 sequences of it, and
    // each tp rank's part of every chunk is sharded over its data-parallel group.
    const mesh = [...tiny, ...emulated("fp32"), "--dp", "2", "--tp", "2", "--zero", "3", "--threads", "1"];
    const run = train(mesh, "emulated-tiny-dp2tp2-zero3");
    expectClose(losses(run), losses(cpuTiny), 1e-5);
    const plan = planJson(mesh);
    for (const m of run) expect(m.rank_device_peak_bytes).toEqual(Array(4).fill(plan.device_peak_bytes));
  });

  test("--dp 2 --zero 3 with each rank's shards offloaded, through the NCCL stand-in: the CPU backend's losses, peaks as planned", () => {
    const sharded = [...tiny, ...emulated("fp32"), "--dp", "2", "--zero", "3", "--device-memory", "1.2MiB", "--checkpoint", "none"];
    const args = [...sharded, "--threads", "1"];
    const plan = planJson(args);
    expect(plan.offload.model_data_on_host).toBe(true);
    const run = train(args, "emulated-tiny-dp2-zero3");
    expectClose(losses(run), losses(cpuTiny), 1e-5);
    for (const m of run) expect(m.rank_device_peak_bytes).toEqual(Array(2).fill(plan.device_peak_bytes));
  });

  test("PaLM small's shape in fp32: 10 losses within 1e-5 of the CPU backend", () => {
    // PaLM small with the Markov corpus's vocabulary and a shorter sequence: rotary embeddings, SiLU,
    // multi-query attention and bias-free LayerNorm, as in the preset.
    const palm = ["samples/palm.ts", "--set", "vocab=512", "--set", "seq=32", "--batch", "4", "--threads", "2"];
    const cpu = train(palm, "cpu-palm");
    const emu = train([...palm, ...emulated("fp32")], "emulated-palm");
    expectClose(losses(emu), losses(cpu), 1e-5);
  });
});
