// A model written with the elementwise and reduction primitives (issue 17) builds with g++ and trains on
// the CPU backend: RMSNorm in place of LayerNorm and a softmax-gated MLP
// (test/fixtures/models/rmsnorm_gpt.ts). Each primitive's gradient is test/unit/gradcheck.test.ts's and
// each kernel test/system/op_kernels.test.ts's; this checks that they plan, link and train together, and
// that the planned peak is the measured one.
import { describe, expect, test } from "vitest";
import { stow } from "../helpers/run.ts";
import { compareWithTorch, preNormGptInit } from "../helpers/torch_compare.ts";

describe("a model built on the primitives", () => {
  test("RMSNorm GPT trains three steps on the CPU with the peak as planned", () => {
    const r = stow(["train", "test/fixtures/models/rmsnorm_gpt.ts", "--batch", "2", "--steps", "3", "--threads", "1", "--no-sample"]);
    expect(r.status, r.stderr).toBe(0);
    const losses = [...r.stdout.matchAll(/step \d+\/3 {2}loss (\S+)/g)].map((m) => Number(m[1]));
    expect(losses).toHaveLength(3);
    expect(losses.every(Number.isFinite)).toBe(true);
    // Each step reads a new batch, so three steps need not fall; at init the loss is about ln(256).
    expect(Math.abs(losses[0] - Math.log(256))).toBeLessThan(0.1);
    const peak = /device high-water (\S+ \S+) \(planned (\S+ \S+)\)/.exec(r.stdout);
    expect(peak?.[1]).toBe(peak?.[2]);
  }, 180_000);
});

describe("a model built on the primitives matches PyTorch", () => {
  test("RMSNorm GPT, 10 steps, clipping at 1.0", () => {
    // GPT-2's vocabulary: the comparison's tokens are the built-in corpus in GPT-2 tokens.
    const config = { vocab: 50257, seq: 16, layers: 2, dim: 16, heads: 2 };
    const init = preNormGptInit(config, { wte: "wte.weight", wpe: "wpe.weight", positions: config.seq }, 4242);
    const losses = compareWithTorch({
      model: "test/fixtures/models/rmsnorm_gpt.ts",
      preset: "tiny",
      set: [`vocab=${config.vocab}`],
      config,
      script: "rmsnorm_gpt_torch.py",
      init,
      gradClip: "1.0",
      batch: 4,
      seq: 16,
      steps: 10,
    });
    expect(losses[9]).toBeLessThan(losses[0]);
  }, 180_000);
});
