// A model written with the elementwise and reduction primitives (issue 17) builds with g++ and trains on
// the CPU backend: RMSNorm in place of LayerNorm and a softmax-gated MLP
// (test/fixtures/models/rmsnorm_gpt.ts). Each primitive's gradient is test/unit/gradcheck.test.ts's and
// each kernel test/system/op_kernels.test.ts's; this checks that they plan, link and train together, and
// that the planned peak is the measured one.
import { describe, expect, test } from "vitest";
import { stow } from "../helpers/run.ts";

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
