// Model data in host memory: when the device budget cannot hold parameters, gradients and AdamW states,
// the plan keeps them on the host and moves each parameter in for the phase that reads it. The step
// must compute bitwise what the all-resident step computes, and the device must stay within budget.
import { mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, test } from "vitest";
import { builtinCorpusText } from "../../src/data/corpus.ts";
import { makeMarkovCorpus } from "../../src/data/synthetic.ts";
import { encodeText } from "../../src/data/tokenize.ts";
import { writeTokenFile } from "../../src/data/token_file.ts";
import { stowPlanJson, stowTrain } from "../helpers/stow_commands.ts";
import { readMetrics, stow } from "../helpers/run.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "stow-offload-"));
const corpus = path.join(dir, "corpus.bin");
const markov512 = path.join(dir, "markov512.bin");
const mini = ["samples/gpt2.ts", "--preset", "mini", "--batch", "4", "--seq", "64", "--threads", "2"];

beforeAll(() => {
  writeTokenFile(corpus, encodeText(builtinCorpusText()).slice(0, 20_000));
  writeTokenFile(markov512, makeMarkovCorpus({ vocab: 512, k: 2, length: 100_000, seed: 3 }).tokens);
});

const train = (args: string[], metrics: string, data = corpus) => stowTrain([...args, "--data", data], metrics);
const planJson = stowPlanJson;

describe("offloaded model data", () => {
  test.each(["1.0", "0"])(
    "gpt2 mini under a budget it cannot hold resident: bitwise the resident losses, within budget (clip %s)",
    (clip) => {
      // --checkpoint none: with a budget the default is auto, which might recompute instead of offloading.
      const mini = [
        "samples/gpt2.ts",
        "--preset",
        "mini",
        "--batch",
        "4",
        "--seq",
        "64",
        "--threads",
        "2",
        "--grad-clip",
        clip,
        "--checkpoint",
        "none",
      ];
      const resident = planJson(mini);
      const budget = Math.floor(resident.arena_bytes * 0.7);
      const offloaded = planJson([...mini, "--device-memory", String(budget)]);
      expect(offloaded.offload.model_data_on_host).toBe(true);
      expect(offloaded.arena_bytes).toBeLessThanOrEqual(budget);

      const a = train([...mini, "--steps", "4"], path.join(dir, `resident-${clip}.jsonl`));
      const b = train([...mini, "--steps", "4", "--device-memory", String(budget)], path.join(dir, `offloaded-${clip}.jsonl`));
      expect(b.map((m) => m.loss)).toEqual(a.map((m) => m.loss));
      expect(b.map((m) => m.grad_norm)).toEqual(a.map((m) => m.grad_norm));
      for (const m of b) {
        expect(m.device_peak_bytes).toBe(offloaded.device_peak_bytes);
        expect(m.device_peak_bytes).toBeLessThanOrEqual(budget);
        expect(m.h2d_bytes + m.d2h_bytes).toBe(offloaded.offload.transfer_bytes_per_step);
        // Every gradient goes out exactly once; each chunk of parameters comes in at least once.
        const paramBytes = 4 * offloaded.params.reduce((s: number, p: { shape: number[] }) => s + p.shape.reduce((x, y) => x * y, 1), 0);
        expect(m.d2h_bytes).toBe(paramBytes);
        expect(m.h2d_bytes).toBeGreaterThanOrEqual(paramBytes);
        expect(m.host_peak_bytes).toBeGreaterThanOrEqual(offloaded.host_bytes);
        expect(m.device_budget_bytes).toBe(budget);
      }
      expect(a.every((m) => m.h2d_bytes === 0 && m.d2h_bytes === 0 && m.device_budget_bytes === 0)).toBe(true);
    },
  );

  test("gpt2 mini in 30% of its all-resident peak: bitwise the unlimited losses, at the planned peak within budget", () => {
    const mini = ["samples/gpt2.ts", "--preset", "mini", "--threads", "2"]; // the default batch, 8 x 128
    const resident = planJson(mini);
    const budget = Math.floor(0.3 * resident.device_peak_bytes);
    const offloaded = planJson([...mini, "--device-memory", String(budget), "--checkpoint", "auto"]);
    expect(offloaded.offload.model_data_on_host).toBe(true);
    expect(offloaded.arena_bytes).toBeLessThanOrEqual(budget);
    const a = train([...mini, "--steps", "6"], path.join(dir, "unlimited.jsonl"));
    const b = train([...mini, "--steps", "6", "--device-memory", String(budget), "--checkpoint", "auto"], path.join(dir, "thirty.jsonl"));
    expect(b.map((m) => m.loss)).toEqual(a.map((m) => m.loss));
    expect(b.map((m) => m.grad_norm)).toEqual(a.map((m) => m.grad_norm));
    for (const m of b) {
      expect(m.device_peak_bytes).toBeLessThanOrEqual(budget);
      expect(m.device_budget_bytes).toBe(budget);
    }
    // The plan is what ran until the profiled warm-up (steps 2 and 3) could re-plan.
    for (const m of b.slice(0, 3)) expect(m.device_peak_bytes).toBe(offloaded.device_peak_bytes);
  });

  test.each(["1.0", "0"])(
    "chunks: some resident, copies ahead, forward copies kept, over a throttled link: bitwise the resident losses (clip %s)",
    (clip) => {
      const model = [
        "samples/gpt2.ts",
        "--set",
        "vocab=512",
        "--set",
        "dim=256",
        "--set",
        "layers=8",
        "--set",
        "heads=8",
        "--set",
        "seq=64",
        "--batch",
        "2",
        "--seq",
        "64",
        "--threads",
        "2",
        "--checkpoint",
        "blocks",
        "--grad-clip",
        clip,
      ];
      const budget = ["--device-memory", "40MiB", "--link-gbps", "1"];
      const plan = planJson([...model, ...budget]);
      const chunks = plan.offload.chunks as { placement: string; kept: boolean; h2d_bytes: number; d2h_bytes: number }[];
      // The schedule this test means to exercise: partly resident, prefetching, and keeping copies.
      expect(chunks.some((c) => c.placement === "device")).toBe(true);
      expect(chunks.some((c) => c.placement === "host" && c.kept)).toBe(true);
      expect(chunks.some((c) => c.placement === "host" && !c.kept)).toBe(true);
      expect(plan.offload.lookahead).toBeGreaterThanOrEqual(1);
      const movedIn = chunks.reduce((s, c) => s + c.h2d_bytes, 0);
      const movedOut = chunks.reduce((s, c) => s + c.d2h_bytes, 0);
      expect(movedIn + movedOut).toBe(plan.offload.transfer_bytes_per_step);

      const a = train([...model, "--steps", "4"], path.join(dir, `chunks-resident-${clip}.jsonl`), markov512);
      // No profiled warm-up here, so that every step runs the plan above.
      const b = train(
        [...model, ...budget, "--steps", "4", "--profile-steps", "0"],
        path.join(dir, `chunks-offloaded-${clip}.jsonl`),
        markov512,
      );
      expect(b.map((m) => m.loss)).toEqual(a.map((m) => m.loss));
      for (const m of b) {
        expect(m.device_peak_bytes).toBe(plan.device_peak_bytes);
        expect(m.device_peak_bytes).toBeLessThanOrEqual(40 * 2 ** 20);
        expect(m.h2d_bytes).toBe(movedIn);
        expect(m.d2h_bytes).toBe(movedOut);
        // At 1 Gbit/s each way, the link needs movedIn / 0.125e9 seconds to the device (about 0.4 s, several
        // times the compute); the step cannot be shorter.
        expect(m.step_seconds).toBeGreaterThanOrEqual(Math.max(movedIn, movedOut) / 0.125e9);
      }
    },
  );

  test("a profiled warm-up re-plans with measured times; the run continues bitwise, within budget", () => {
    const model = [
      "samples/gpt2.ts",
      "--set",
      "vocab=512",
      "--set",
      "dim=256",
      "--set",
      "layers=8",
      "--set",
      "heads=8",
      "--set",
      "seq=64",
      "--batch",
      "2",
      "--seq",
      "64",
      "--threads",
      "2",
      "--checkpoint",
      "blocks",
      "--grad-clip",
      "0",
    ];
    const budget = ["--device-memory", "40MiB", "--link-gbps", "8"];
    const plan = planJson([...model, ...budget]);
    const profile = path.join(dir, "profile.json");
    const metricsFile = path.join(dir, "profiled.jsonl");
    // Offloaded runs profile steps 2 and 3 by default, then re-plan; the schedule may change or not.
    const r = stow([
      "train",
      ...model,
      ...budget,
      "--steps",
      "5",
      "--data",
      markov512,
      "--no-sample",
      "--metrics",
      metricsFile,
      "--profile",
      profile,
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/re-plan(ned)? with the measured times: /);
    const profiled = readMetrics(metricsFile);
    const resident = train([...model, "--steps", "5"], path.join(dir, "profiled-resident.jsonl"), markov512);
    expect(profiled.map((m) => m.loss)).toEqual(resident.map((m) => m.loss));
    for (const m of profiled.slice(0, 3)) expect(m.device_peak_bytes).toBe(plan.device_peak_bytes);
    for (const m of profiled) expect(m.device_peak_bytes).toBeLessThanOrEqual(40 * 2 ** 20);

    // The profile: one time per node of the training program, shown beside the predictions.
    const measured = JSON.parse(readFileSync(profile, "utf8"));
    expect(measured.steps).toBe(2);
    expect(measured.node_seconds).toHaveLength(plan.train.nodes);
    // The same two steps: the metrics print 6 significant digits, the profile 9.
    profiled.slice(1, 3).forEach((m, i) => expect(Math.abs(measured.step_seconds[i] - m.step_seconds)).toBeLessThan(1e-5 * m.step_seconds));
    const shown = stow(["plan", ...model, ...budget, "--profile", profile]);
    expect(shown.status, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(
      /profile {4}2 steps measured; step time: predicted [\d.]+ ms \(machine model\), [\d.]+ ms \(measured node times\)/,
    );
    expect(shown.stdout).toMatch(/\n {2}matmul +\d+ +[\d.]+ ms +[\d.]+ ms/);
    const other = stow(["plan", ...model, "--profile", profile]);
    expect(other.status).toBe(2);
    expect(other.stderr).toMatch(/--profile: .* was measured on plan \w+, not on this one/);
  });

  test("--checkpoint auto below every resident plan: the fitting offloaded plan with the least predicted step time", () => {
    const model = [
      "samples/gpt2.ts",
      "--set",
      "vocab=2048",
      "--set",
      "layers=8",
      "--set",
      "dim=384",
      "--set",
      "heads=6",
      "--batch",
      "4",
      "--threads",
      "2",
      "--grad-clip",
      "0",
      "--checkpoint",
      "auto",
      "--device-memory",
      "125MiB",
      "--link-gbps",
      "4",
    ];
    const plan = planJson(model);
    type C = { mode: string; offload: boolean; arena_bytes: number; predicted_step_seconds: number; recompute_flops: number };
    const candidates = plan.checkpoint.candidates as C[];
    expect(candidates.filter((c) => !c.offload).every((c) => c.arena_bytes > 125 * 2 ** 20)).toBe(true);
    const fitting = candidates.filter((c) => c.offload && c.arena_bytes <= 125 * 2 ** 20);
    expect(fitting.length).toBeGreaterThan(1);
    const chosen = candidates.find((c) => c.mode === plan.checkpoint.mode && c.offload)!;
    expect(plan.arena_bytes).toBe(chosen.arena_bytes);
    for (const c of fitting) expect(chosen.predicted_step_seconds).toBeLessThanOrEqual(c.predicted_step_seconds);
  });

  test("a stopped and resumed offloaded run matches an uninterrupted one, bitwise", () => {
    const budget = ["--device-memory", "120MiB", "--checkpoint", "none"];
    expect(planJson([...mini, ...budget]).offload.model_data_on_host).toBe(true);
    const ckpt = path.join(dir, "offloaded.safetensors");
    const whole = train([...mini, ...budget, "--steps", "4"], path.join(dir, "whole.jsonl"));
    const first = train([...mini, ...budget, "--steps", "4", "--stop-after", "2", "--save", ckpt], path.join(dir, "first.jsonl"));
    const rest = train([...mini, ...budget, "--steps", "4", "--resume", ckpt], path.join(dir, "rest.jsonl"));
    expect([...first, ...rest].map((m) => m.loss)).toEqual(whole.map((m) => m.loss));
  });

  test("a GPT whose model data is over 8x the device budget trains, and its loss falls", () => {
    const data = markov512;
    const model = [
      "samples/gpt2.ts",
      "--set",
      "vocab=512",
      "--set",
      "dim=256",
      "--set",
      "layers=8",
      "--set",
      "heads=8",
      "--set",
      "seq=64",
      "--batch",
      "2",
      "--seq",
      "64",
      "--threads",
      "2",
      "--device-memory",
      "12MiB",
      "--checkpoint",
      "auto",
    ];
    const plan = planJson(model);
    expect(plan.offload.model_data_on_host).toBe(true);
    expect(plan.host_bytes).toBeGreaterThanOrEqual(8 * 12 * 2 ** 20); // parameters, gradients and both moments
    const metricsFile = path.join(dir, "big.jsonl");
    const r = stow([
      "train",
      ...model,
      "--data",
      data,
      "--steps",
      "150",
      "--lr",
      "2e-3",
      "--warmup-steps",
      "10",
      "--no-sample",
      "--metrics",
      metricsFile,
    ]);
    expect(r.status, r.stderr).toBe(0);
    const metrics = readMetrics(metricsFile);
    for (const m of metrics) expect(m.device_peak_bytes).toBeLessThanOrEqual(12 * 2 ** 20);
    const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
    const losses = metrics.map((m) => m.loss);
    // From ln 512 = 6.24 towards the corpus's entropy rate (0.53 nats).
    expect(mean(losses.slice(0, 5))).toBeGreaterThan(5.5);
    expect(mean(losses.slice(-10))).toBeLessThan(3);
  });
});
