// Attention that is not causal, takes an additive mask, or attends to a memory of another length
// (cross-attention; test/fixtures/models/masked_attention.ts),
// and an untied LM head cut by the vocabulary (Linear's parallel: "vocab"), under the shard pass: in
// float64 on simulated ranks against the unsharded step (test/helpers/shard_compare.ts). A mask the
// same for every head is read whole beside the rank's heads; learned biases (test/fixtures/models/
// learned_bias.ts) follow the split of q, and their gradients are each rank's part of the unsharded ones.
import { describe, expect, test } from "vitest";
import type { ModelConfig, ModelDefinition } from "../../src/dsl/model.ts";
import { loadModel } from "../../src/load/load_model.ts";
import { compareSharded } from "../helpers/shard_compare.ts";

describe("masked, non-causal and cross-attention sharded by heads", () => {
  test("at 2 ranks: each rank's loss, gradients and updates are its part of the unsharded step", async () => {
    const path = "test/fixtures/models/masked_attention.ts";
    const { module } = await loadModel(path);
    const config = module.presets.tiny as ModelConfig;
    const g = compareSharded({ model: module as ModelDefinition, path, config, batch: 2, seq: 8 }, 2);
    const attention = g.nodes.filter((n) => n.op === "attention" && n.phase === "forward");
    // Each rank: 2 of the 4 heads. The encoder's takes the whole [8, 8] mask and is not causal; the
    // cross-attention's keys are the 4 positions of the memory.
    const causal = (n: (typeof attention)[number]) => ("causal" in n.attrs ? n.attrs.causal : undefined);
    expect(attention.map((n) => [n.inputs[0].shape, n.inputs[1].shape, n.inputs[3]?.shape, causal(n)])).toEqual([
      [[2, 2, 8, 4], [2, 2, 8, 4], [8, 8], false],
      [[2, 2, 8, 4], [2, 2, 4, 4], undefined, false],
      [[2, 2, 8, 4], [2, 2, 8, 4], undefined, undefined],
    ]);
    // The untied head is padded to 2 x 19 rows (vocabulary 37), its loss vocabulary-parallel.
    expect(g.params.find((p) => p.name === "head.weight")!.shape).toEqual([19, 16]);
    expect(g.nodes.some((n) => n.op === "cross_entropy_vp")).toBe(true);
  });
});

describe("learned attention biases sharded by heads", () => {
  test("at 2 ranks: shared, replicated per head, cut by heads, per example; each rank's step is its part", async () => {
    const path = "test/fixtures/models/learned_bias.ts";
    const { module } = await loadModel(path);
    const config = module.presets.tiny as ModelConfig;
    const g = compareSharded({ model: module as ModelDefinition, path, config, batch: 2, seq: 6 }, 2);
    const attention = g.nodes.filter((n) => n.op === "attention" && n.phase === "forward");
    // Each rank: 2 of the 4 heads, and of a per-head bias its 2 heads' part.
    expect(attention.map((n) => [n.inputs[0].shape, n.inputs[3].shape, n.inputs[3].producer.op])).toEqual([
      [[2, 2, 6, 2], [6, 6], "tp_copy"],
      [[2, 2, 6, 2], [1, 2, 6, 6], "reshape"],
      [[2, 2, 6, 2], [2, 6, 6], "param"],
      [[2, 2, 6, 2], [2, 1, 1, 6], "tp_copy"],
    ]);
    expect(g.params.find((p) => p.name === "layers.2.bias")!.shape).toEqual([2, 6, 6]);
    // Every bias gets its gradient from the attention backward.
    expect(g.nodes.filter((n) => n.op === "attention_bwd" && n.outputs.length === 4)).toHaveLength(4);
  });
});
