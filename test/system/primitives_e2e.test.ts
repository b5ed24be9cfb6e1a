// A model written with the elementwise and reduction primitives (issue 17) builds with g++ and trains on
// the CPU backend: RMSNorm in place of LayerNorm and a softmax-gated MLP
// (test/fixtures/models/rmsnorm_gpt.ts). Each primitive's gradient is test/unit/gradcheck.test.ts's and
// each kernel test/system/op_kernels.test.ts's; this checks that they plan, link and train together, and
// that the planned peak is the measured one.
import { describe, expect, test } from "vitest";
import { stow } from "../helpers/run.ts";
import { type InitTensor, compareWithTorch, normalSampler, writeInit } from "../helpers/torch_compare.ts";

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
    const C = config.dim;
    const normal = normalSampler(4242);
    const dense = (name: string, out: number, inp: number): InitTensor => ({
      name,
      shape: [out, inp],
      fill: () => normal(1 / Math.sqrt(inp)),
    });
    const norm = (name: string): InitTensor => ({ name, shape: [C], fill: () => 1 + normal(0.1) });
    const init = (file: string) => {
      const tensors: InitTensor[] = [
        { name: "wte.weight", shape: [config.vocab, C], fill: () => normal(0.5) },
        { name: "wpe.weight", shape: [config.seq, C], fill: () => normal(0.1) },
      ];
      for (let l = 0; l < config.layers; l++) {
        const b = `blocks.${l}`;
        tensors.push(
          norm(`${b}.norm1.weight`),
          dense(`${b}.qkv.weight`, 3 * C, C),
          dense(`${b}.proj.weight`, C, C),
          norm(`${b}.norm2.weight`),
          dense(`${b}.up.weight`, 4 * C, C),
          dense(`${b}.down.weight`, C, 4 * C),
        );
      }
      tensors.push(norm("norm.weight"), dense("head.weight", config.vocab, C));
      writeInit(file, tensors);
    };
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
