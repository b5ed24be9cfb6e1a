// Data parallelism (--dp N, --zero, --grad-accum): the tiny GPT trained on 2 and 4 MPI ranks against the
// single-process run at the same global batch (--batch), from the same seed and tokens (that run is itself
// checked against PyTorch in train_vs_torch.test.ts). Each data-parallel rank reads its own rows of every
// global batch and the gradients are averaged, so the losses agree to float rounding. Also: each rank's
// measured device peak and collective bytes against the plan, and the flag combinations refused.
import { TINY_GPT, expectRelativelyClose, stowPlanJson, stowTrain } from "../helpers/stow_commands.ts";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { makeMarkovCorpus } from "../../src/data/synthetic.ts";
import { writeTokenFile } from "../../src/data/token_file.ts";
import { mpiRankProcess, startStow, stow, waitFor } from "../helpers/run.ts";
import { readSafetensorsHeader } from "../../src/checkpoint/safetensors.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "stow-dp-"));
const data = path.join(dir, "markov512.bin");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// The global batch is 4 sequences at every degree; ranks share the machine's cores, one thread each.
const tiny = [...TINY_GPT, "--set", "seq=32", "--batch", "4", "--threads", "1"];
const steps = 10;
type Metrics = Record<string, number | number[]>[];

const train = (flags: string[], name: string): Metrics =>
  stowTrain([...tiny, ...flags, "--data", data, "--steps", `${steps}`, "--lr", "3e-3"], path.join(dir, `${name}.jsonl`));
const losses = (m: Metrics) => m.map((s) => s.loss as number);
const norms = (m: Metrics) => m.map((s) => s.grad_norm as number);

/** A run saving at step 5 and 10, and keeping both: `saved(name, 5)` resumes halfway. */
const saving = (name: string) => ["--save", path.join(dir, `${name}.safetensors`), "--save-every", "5", "--keep", "2"];
const saved = (name: string, step: number) => path.join(dir, `${name}.step${step}.safetensors`);

/** `make` run once, by whichever test needs it first. */
function once<T>(make: () => T): () => T {
  let made: { value: T } | undefined;
  return () => (made ??= { value: make() }).value;
}

let dp1: Metrics;
let dp2: Metrics;
// Runs that tests share: their halfway checkpoints are resumed at other degrees.
const zero3Flags = ["--dp", "2", "--zero", "3"];
const dp2zero3 = once(() => train([...zero3Flags, ...saving("dp2zero3")], "dp2zero3"));
const meshFlags = ["--dp", "2", "--tp", "2", "--zero", "3"];
const dp2tp2zero3 = once(() => train([...meshFlags, ...saving("dp2tp2zero3")], "dp2tp2zero3"));

beforeAll(() => {
  writeTokenFile(data, makeMarkovCorpus({ vocab: 512, k: 2, length: 100_000, seed: 3 }).tokens);
  dp1 = train(saving("dp1"), "dp1");
  dp2 = train(["--dp", "2"], "dp2");
});

/** Each rank's measured device peak and collective calls and bytes equal what `stow plan` predicts; that plan's figures. */
function expectAsPlanned(run: Metrics, flags: string[]) {
  const plan = stowPlanJson([...tiny, ...flags]);
  const r = plan.data_parallel;
  for (const m of run) {
    expect(m.ranks).toBe(r.ranks);
    expect(m.rank_device_peak_bytes).toEqual(r.rank_device_peak_bytes);
    expect(m.rank_comm_calls).toEqual(Array(r.ranks).fill(r.collective_calls_per_step));
    expect(m.rank_comm_bytes).toEqual(Array(r.ranks).fill(r.collective_bytes_per_step));
  }
  return r;
}

describe("data parallelism over MPI ranks", () => {
  test("--dp 2 --zero 0: ten losses within 1e-6 relative of one rank at the same global batch; peaks and bytes as planned", () => {
    const run = dp2;
    expectRelativelyClose(losses(run), losses(dp1), "dp 2", 1e-6);
    expectRelativelyClose(norms(run), norms(dp1), "dp 2 gradient norm (of the global gradient)", 1e-5);
    expect(losses(dp1)[steps - 1]).toBeLessThan(losses(dp1)[0]); // it trains
    // Tokens per step are the global batch's.
    expect(run[0].tokens).toBe(dp1[0].tokens);
    expectAsPlanned(run, ["--dp", "2"]);
    const plan = stowPlanJson([...tiny, "--dp", "2"]).data_parallel;
    expect(plan.micro_batch).toBe(2);
    expect(plan.global_batch).toBe(4);
    // Every parameter's gradient and the loss are averaged: their bytes, once each.
    const params = stowPlanJson(tiny).params as { shape: number[] }[];
    const gradBytes = params.reduce((s, p) => s + 4 * p.shape.reduce((a, b) => a * b, 1), 0);
    expect(plan.dp_collective_calls_per_step).toBe(params.length + 1);
    expect(plan.dp_collective_bytes_per_step).toBe(gradBytes + 4);
  });

  test("--dp 2 --zero 1: AdamW moments sharded by chunk, the same update bitwise, half the moments on each rank", () => {
    const run = train(["--dp", "2", "--zero", "1"], "dp2zero1");
    expectRelativelyClose(losses(run), losses(dp1), "dp 2 zero 1", 1e-6);
    // Each element is updated by the same formula from the same averaged gradient, only on one rank.
    expect(losses(run)).toEqual(losses(dp2));
    expect(norms(run)).toEqual(norms(dp2));
    expectAsPlanned(run, ["--dp", "2", "--zero", "1"]);
    const zero0 = stowPlanJson([...tiny, "--dp", "2"]);
    const zero1 = stowPlanJson([...tiny, "--dp", "2", "--zero", "1"]);
    const chunks = zero1.offload.chunks.length;
    // Half of the moments, give or take each chunk's shard padding (64-byte aligned, two moments).
    expect(zero1.breakdown.optimizer_states).toBeGreaterThanOrEqual(zero0.breakdown.optimizer_states / 2);
    expect(zero1.breakdown.optimizer_states).toBeLessThanOrEqual(zero0.breakdown.optimizer_states / 2 + 2 * 64 * chunks);
    expect(zero1.device_peak_bytes).toBeLessThan(zero0.device_peak_bytes);
    // The chunk gathers are data-parallel collectives too: one per chunk.
    expect(zero1.data_parallel.dp_collective_calls_per_step).toBe(zero0.data_parallel.dp_collective_calls_per_step + chunks);
  });

  test("--dp 2 --zero 2: gradients reduce-scattered by chunk; the losses of one rank; peaks and bytes as planned", () => {
    const run = train(["--dp", "2", "--zero", "2"], "dp2zero2");
    expectRelativelyClose(losses(run), losses(dp1), "dp 2 zero 2", 1e-6);
    // The norm is summed from the shards in another order than from whole gradients.
    expectRelativelyClose(norms(run), norms(dp2), "dp 2 zero 2 gradient norm", 1e-6);
    expectAsPlanned(run, ["--dp", "2", "--zero", "2"]);
    const plan = stowPlanJson([...tiny, "--dp", "2", "--zero", "2"]);
    const chunks = plan.offload.chunks.length;
    // Per chunk a reduce-scatter and a gather; the loss's mean and the norm's sum of squares.
    expect(plan.data_parallel.dp_collective_calls_per_step).toBe(2 * chunks + 2);
    expect(plan.breakdown.optimizer_states).toBe(stowPlanJson([...tiny, "--dp", "2", "--zero", "1"]).breakdown.optimizer_states);
  });

  test("--dp 2 --zero 3: parameters sharded by chunk and gathered for use; the losses of one rank; memory and bytes as planned", () => {
    const flags = zero3Flags;
    const run = dp2zero3();
    expectRelativelyClose(losses(run), losses(dp1), "dp 2 zero 3", 1e-6);
    expectRelativelyClose(norms(run), norms(dp2), "dp 2 zero 3 gradient norm", 1e-6);
    const plan = expectAsPlanned(run, flags);
    const one = stowPlanJson(tiny).data_parallel;
    // The runtime holds only its shards of the parameters between steps.
    for (const m of run) expect(m.rank_param_bytes).toEqual(plan.rank_held_param_bytes);
    // Model data kept per rank (parameters and moments) is half of one rank's, give or take a chunk.
    const chunkBytes = Math.max(...plan.chunk_shards.map((c: { bytes: number }) => c.bytes));
    expect(Math.abs(plan.rank_model_data_bytes[0] - one.rank_model_data_bytes[0] / 2)).toBeLessThanOrEqual(chunkBytes);
    expect(plan.rank_held_param_bytes[0]).toBeLessThanOrEqual(one.rank_held_param_bytes[0] / 2 + 64 * plan.chunk_shards.length);
    // Per chunk a reduce-scatter and a gather for each of the forward and the backward; the loss's mean
    // and the norm's sum of squares.
    expect(plan.dp_collective_calls_per_step).toBe(3 * plan.chunk_shards.length + 2);
    // Saving gathers one chunk at a time on the first data-parallel rank, the largest at most; the other
    // only sends its shards (measured after the save at step 5).
    expect(run[4].rank_save_host_bytes).toEqual([0, 0]);
    for (const m of run.slice(5)) expect(m.rank_save_host_bytes).toEqual([chunkBytes, 0]);
    // The gathers and reduce-scatters are waited for, and the waits are measured: every rank spends some
    // time in them over the run, as in ZeRO 0's waits for its gradient all-reduces.
    for (const r of [0, 1])
      for (const each of [run, dp2]) expect(each.reduce((s, m) => s + (m.rank_collective_wait_us as number[])[r], 0)).toBeGreaterThan(0);
  });

  test("--dp 2 --zero 3 with model data offloaded: each rank holds half of one rank's host model data; the losses of one rank", () => {
    // Budgets at which every chunk is offloaded, at one rank and at two.
    const one = ["--device-memory", "2MiB", "--checkpoint", "none"];
    const two = ["--dp", "2", "--zero", "3", "--device-memory", "1.2MiB", "--checkpoint", "none"];
    const planOne = stowPlanJson([...tiny, ...one]);
    const planTwo = stowPlanJson([...tiny, ...two]);
    const chunks = planTwo.offload.chunks as { placement: string; bytes: number }[];
    for (const plan of [planOne, planTwo])
      expect(plan.offload.chunks.map((c: { placement: string }) => c.placement)).toEqual(chunks.map(() => "host"));
    // Parameters, moments and gradient copies: half, give or take each chunk's shard padding (64 bytes, 4 of them).
    expect(planTwo.host_bytes).toBeGreaterThanOrEqual(planOne.host_bytes / 2);
    expect(planTwo.host_bytes).toBeLessThanOrEqual(planOne.host_bytes / 2 + 4 * 64 * chunks.length);
    const runOne = train(one, "offload-dp1");
    const runTwo = train(two, "offload-dp2-zero3");
    expect(losses(runOne)).toEqual(losses(dp1)); // offloading copies exactly
    expectRelativelyClose(losses(runTwo), losses(dp1), "dp 2 zero 3 offloaded", 1e-6);
    expectAsPlanned(runTwo, two);
    // The shards' copies in and the gradient shards' out, as planned.
    for (const m of runTwo) expect((m.h2d_bytes as number) + (m.d2h_bytes as number)).toBe(planTwo.offload.transfer_bytes_per_step);
    // Measured: each rank's host high-water mark is below one rank's by half its host model data, give or
    // take one chunk (a rank makes whole parameters a chunk at a time, to keep its shard of them).
    const chunkBytes = Math.max(...chunks.map((c) => c.bytes));
    for (const m of runTwo)
      for (const peak of m.rank_host_peak_bytes as number[])
        expect((runOne[0].host_peak_bytes as number) - peak).toBeGreaterThanOrEqual(planOne.host_bytes / 2 - chunkBytes);
  });

  test("--dp 2 --tp 2 --zero 3 (4 ranks): the losses of one rank; memory and bytes as planned; saved a chunk at a time; resumed at dp 1 x tp 1 and the reverse", () => {
    const run = dp2tp2zero3();
    expectRelativelyClose(losses(run), losses(dp1), "dp 2 x tp 2 zero 3", 1e-6);
    // The norm sums the tensor-parallel parts' squares over the tp ranks and the whole parameters' once.
    expectRelativelyClose(norms(run), norms(dp1), "dp 2 x tp 2 zero 3 gradient norm", 1e-6);
    const plan = expectAsPlanned(run, meshFlags);
    for (const m of run) expect(m.rank_param_bytes).toEqual(plan.rank_held_param_bytes);
    // Saving: the first data-parallel rank of each tp index gathers one chunk of its part at a time; world
    // rank 0 also holds the ranks' parts of the tensor it writes (here, without padding, the whole
    // tensor's bytes). The second data-parallel rank only sends.
    const chunkBytes = Math.max(...plan.chunk_shards.map((c: { bytes: number }) => c.bytes));
    const whole = [...readSafetensorsHeader(saved("dp1", 5)).tensors.values()];
    const tensorBytes = Math.max(...whole.map((t) => t.byteRange[1] - t.byteRange[0]));
    const [writer, ...others] = run[5].rank_save_host_bytes as number[];
    expect(others).toEqual([chunkBytes, 0, 0]);
    expect(writer).toBeGreaterThanOrEqual(chunkBytes);
    expect(writer).toBeLessThanOrEqual(chunkBytes + tensorBytes);

    // Saved halfway at dp 2 x tp 2, resumed at dp 1 x tp 1; and the reverse.
    const one = train(["--resume", saved("dp2tp2zero3", 5)], "dp2tp2zero3-resumed-at-dp1");
    expect(one.map((m) => m.step)).toEqual([6, 7, 8, 9, 10]);
    expectRelativelyClose(losses(one), losses(dp1).slice(5), "saved at dp 2 x tp 2 zero 3, resumed at dp 1", 1e-6);
    const mesh = train([...meshFlags, "--resume", saved("dp1", 5)], "dp1-resumed-at-dp2tp2zero3");
    expectRelativelyClose(losses(mesh), losses(dp1).slice(5), "saved at dp 1, resumed at dp 2 x tp 2 zero 3", 1e-6);
  });

  test("--dp 2 --tp 2 --zero 2 (4 ranks): whole parameters replicated, gradients reduce-scattered by chunk; the losses of one rank; as planned", () => {
    const flags = ["--dp", "2", "--tp", "2", "--zero", "2"];
    const run = train(flags, "dp2tp2zero2");
    expectRelativelyClose(losses(run), losses(dp1), "dp 2 x tp 2 zero 2", 1e-6);
    expectRelativelyClose(norms(run), norms(dp1), "dp 2 x tp 2 zero 2 gradient norm", 1e-6);
    expectAsPlanned(run, flags);
  });

  test("--grad-accum 2, alone and with --dp 2: the losses of one step over the whole batch; peaks and bytes as planned", () => {
    const accum = train(["--grad-accum", "2"], "accum2");
    expectRelativelyClose(losses(accum), losses(dp1), "grad-accum 2", 1e-6);
    const plan = stowPlanJson([...tiny, "--grad-accum", "2"]);
    for (const m of accum) expect(m.device_peak_bytes).toBe(plan.device_peak_bytes);
    expect(plan.data_parallel.micro_batch).toBe(2);

    const both = train(["--dp", "2", "--grad-accum", "2"], "dp2accum2");
    expectRelativelyClose(losses(both), losses(dp1), "dp 2 x grad-accum 2", 1e-6);
    expectAsPlanned(both, ["--dp", "2", "--grad-accum", "2"]);
    expect(stowPlanJson([...tiny, "--dp", "2", "--grad-accum", "2"]).data_parallel.micro_batch).toBe(1);
  });

  test("checkpoints stay whole: saved at dp 2 with sharded parameters and moments, resumed at dp 1, and the reverse", () => {
    dp2zero3();
    const second = train(["--resume", saved("dp2zero3", 5)], "dp2zero3-resumed-at-dp1");
    expect(second.map((m) => m.step)).toEqual([6, 7, 8, 9, 10]);
    // Wrong moments would change every update after the resume.
    expectRelativelyClose(losses(second), losses(dp1).slice(5), "resumed at dp 1", 1e-6);
    const sharded = train([...zero3Flags, "--resume", saved("dp1", 5)], "dp1-resumed-at-dp2zero3");
    expectRelativelyClose(losses(sharded), losses(dp1).slice(5), "resumed at dp 2 zero 3", 1e-6);
  });

  test("a rank killed at --dp 2 --zero 3 ends the job within seconds, naming it; the last checkpoint resumes", async () => {
    const ckpt = path.join(dir, "killed.safetensors");
    const args = ["train", ...tiny, "--dp", "2", "--zero", "3", "--data", data, "--steps", "100000", "--save-every", "5"];
    const run = startStow([...args, "--save", ckpt, "--no-sample"]);
    let rank1: number | undefined;
    await waitFor(() => (rank1 = mpiRankProcess(run.child.pid!, 1)) !== undefined, "rank 1's process", 300);
    await waitFor(() => existsSync(ckpt), "the first periodic save", 300);
    const killedAt = Date.now();
    process.kill(rank1!, "SIGKILL");
    const ended = await run.done;
    expect(Date.now() - killedAt).toBeLessThan(15_000);
    expect(ended.status).toBe(2);
    expect(ended.stderr).toMatch(/rank 1 of 2 died \(signal 9, Killed\); the other ranks were stopped/);
    expect(ended.stderr).not.toMatch(/ {4}at /);
    // The checkpoint on disk is a whole one: one rank resumes it and trains on.
    const saved = Number(readSafetensorsHeader(ckpt).metadata.step);
    expect(saved % 5).toBe(0);
    const resumed = stowTrain([...tiny, "--resume", ckpt, "--data", data, "--steps", `${saved + 2}`], path.join(dir, "resumed.jsonl"));
    expect(resumed.map((m) => m.step)).toEqual([saved + 1, saved + 2]);
    expect(resumed.every((m) => Number.isFinite(m.loss as number))).toBe(true);
  });

  test("bad combinations are refused before anything is built, naming the flag", () => {
    const refused = (flags: string[], message: RegExp) => {
      const r = stow(["plan", ...tiny, ...flags]);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(/ {4}at /); // no stack trace
    };
    refused(["--dp", "3"], /--batch 4 is the global batch; it must split evenly over --dp 3 micro-batches, and 3 does not divide it/);
    refused(["--zero", "1"], /--zero 1 shards over data-parallel ranks, but there is one: give --dp 2 or more/);
    refused(["--dp", "2", "--zero", "4"], /--zero must be 0, 1, 2 or 3/);
    refused(
      ["--dp", "2", "--device-memory", "1MiB"],
      /model data was not offloaded to the host: under --dp 2 each rank offloads only its own shard of the model data, which needs --zero 3/,
    );
    refused(["--dp", "0"], /--dp/);
    refused(
      ["--grad-accum", "2", "--move-activations", "1", "--checkpoint", "none"],
      /--move-activations is not combined with --grad-accum yet/,
    );
    refused(
      ["--dp", "2", "--grad-accum", "3"],
      /--batch 4 is the global batch; it must split evenly over --dp 2 x --grad-accum 3 micro-batches, and 6 does not divide it/,
    );
  });
});
