// The attention variants of issue 17 trained end to end: test/fixtures/models/masked_attention.ts (a
// non-causal masked encoder layer, cross-attention to a memory of half the length, a causal decoder
// layer) for ten steps against an independent PyTorch model (test/reference/attention_variants_torch.py)
// from one init and the same tokens, every loss within 1e-4 relative. Each variant's gradient and kernels
// are checked alone by test/unit/gradcheck.test.ts and test/system/op_kernels.test.ts; its sharding by
// test/unit/shard_attention.test.ts.
import { describe, expect, test } from "vitest";
import { type InitTensor, compareWithTorch, normalSampler, writeInit } from "../helpers/torch_compare.ts";

describe("non-causal, masked and cross-attention match PyTorch", () => {
  test("10 steps, clipping at 1.0", () => {
    // GPT-2's vocabulary: the comparison's tokens are the built-in corpus in GPT-2 tokens.
    const config = { vocab: 50257, seq: 16, dim: 16, heads: 4 };
    const C = config.dim;
    const normal = normalSampler(99);
    const dense = (name: string, out: number, inp: number): InitTensor => ({
      name,
      shape: [out, inp],
      fill: () => normal(1 / Math.sqrt(inp)),
    });
    const init = (file: string) => {
      const tensors: InitTensor[] = [{ name: "wte.weight", shape: [config.vocab, C], fill: () => normal(0.5) }];
      const attention = (p: string) => [dense(`${p}.q.weight`, C, C), dense(`${p}.kv.weight`, 2 * C, C), dense(`${p}.out.weight`, C, C)];
      tensors.push(...attention("encoder"), dense("pool.weight", C, 2 * C), ...attention("cross"), ...attention("decoder"));
      tensors.push({ name: "norm.weight", shape: [C], fill: () => 1 + normal(0.1) }, dense("head.weight", config.vocab, C));
      writeInit(file, tensors);
    };
    const losses = compareWithTorch({
      model: "test/fixtures/models/masked_attention.ts",
      preset: "tiny",
      set: [`vocab=${config.vocab}`, `seq=${config.seq}`],
      config,
      script: "attention_variants_torch.py",
      init,
      gradClip: "1.0",
      batch: 4,
      seq: 16,
      steps: 10,
    });
    expect(losses[9]).toBeLessThan(losses[0] - 0.5);
  }, 180_000);
});
