// A model that moves its data with issue 17's movement ops along every axis (narrow, pad, expand,
// concat, stack, indexSelect, gather) and masks with comparisons and where
// (test/fixtures/models/movement_gpt.ts) builds with g++ and trains on
// the CPU backend with the planned peak as measured, with and without recomputing its blocks, and matches
// an independent PyTorch twin (test/reference/movement_gpt_torch.py, written with torch's own idioms:
// indexing, roll, a concatenated zero row) over 10 steps. Each op's gradient is
// test/unit/gradcheck.test.ts's (the whole fixture's too), each kernel test/system/op_kernels.test.ts's.
import { describe, expect, test } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { stow } from "../helpers/run.ts";
import { stowPlanJson, stowTrain } from "../helpers/stow_commands.ts";
import { compareWithTorch, preNormGptInit } from "../helpers/torch_compare.ts";

function train(checkpoint: "none" | "blocks") {
  const r = stow([
    "train",
    "test/fixtures/models/movement_gpt.ts",
    "--batch",
    "2",
    "--steps",
    "3",
    "--threads",
    "1",
    "--no-sample",
    "--checkpoint",
    checkpoint,
  ]);
  expect(r.status, r.stderr).toBe(0);
  const losses = [...r.stdout.matchAll(/step \d+\/3 {2}loss (\S+)/g)].map((m) => Number(m[1]));
  const peak = /device high-water (\S+) (\S+) \(planned (\S+ \S+)\)/.exec(r.stdout);
  expect(peak, r.stdout).not.toBeNull();
  expect(`${peak![1]} ${peak![2]}`).toBe(peak![3]);
  expect(peak![2]).toBe("KiB");
  return { losses, peakKiB: Number(peak![1]) };
}

describe("a model built on the movement ops", () => {
  test("trains on the CPU with the peak as planned; recomputing its blocks keeps the losses", () => {
    const kept = train("none");
    expect(kept.losses).toHaveLength(3);
    // At init the loss is about ln(256): the gathers and pads passed the right rows and no garbage.
    expect(Math.abs(kept.losses[0] - Math.log(256))).toBeLessThan(0.1);
    const recomputed = train("blocks");
    expect(recomputed.peakKiB).toBeLessThan(kept.peakKiB);
    expect(recomputed.losses).toEqual(kept.losses);
  }, 300_000);

  // The backends' GEMMs and softmaxes round differently: test/fixtures/models/rmsnorm_gpt.ts, without
  // these ops, differs by about 1e-5 too at this size. A wrong index or mask would be far beyond 1e-4.
  test("on the emulated CUDA target: the CPU's losses to 1e-4, the peak as planned", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "stow-movement-"));
    try {
      const args = ["test/fixtures/models/movement_gpt.ts", "--batch", "2", "--steps", "3", "--threads", "1"];
      const emulated = ["--backend", "cuda", "--emulate"];
      const cpu = stowTrain(args, path.join(dir, "cpu.jsonl"));
      const cuda = stowTrain([...args, ...emulated], path.join(dir, "cuda.jsonl"));
      const planned = stowPlanJson([...args.filter((a) => a !== "--steps" && a !== "3"), ...emulated]).device_peak_bytes;
      expect(cuda.map((m) => m.device_peak_bytes)).toEqual(cuda.map(() => planned));
      cuda.forEach((m, i) => expect(Math.abs(m.loss - cpu[i].loss) / cpu[i].loss, `step ${i + 1}`).toBeLessThanOrEqual(1e-4));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 600_000);
});

describe("a model built on the movement ops matches PyTorch", () => {
  test("10 steps, clipping at 1.0, within 1e-4 of the twin", () => {
    // GPT-2's vocabulary: the comparison's tokens are the built-in corpus in GPT-2 tokens.
    const config = { vocab: 50257, seq: 16, layers: 2, dim: 16, heads: 2 };
    // The fixture's position table has twice the context's rows; it reads the first seq of them.
    const init = preNormGptInit(config, { wte: "wte", wpe: "wpe", positions: 2 * config.seq }, 1717);
    const losses = compareWithTorch({
      model: "test/fixtures/models/movement_gpt.ts",
      preset: "tiny",
      set: [`vocab=${config.vocab}`],
      config,
      script: "movement_gpt_torch.py",
      init,
      gradClip: "1.0",
      batch: 4,
      seq: 16,
      steps: 10,
    });
    expect(losses[9]).toBeLessThan(losses[0]);
  }, 180_000);
});
