// The shard pass and the gradient rules of the collectives, in float64: one training step of a small
// GPT-2 (vocabulary 37, a prime, so it is padded) sharded over 2 and 3 simulated ranks
// (test/helpers/spmd.ts) against the same step unsharded, both run by the reference interpreter. Each
// rank's loss, gradient norm, gradients and updated parameters must be its part of the unsharded ones.
import { describe, expect, test } from "vitest";
import gpt2 from "../../samples/gpt2.ts";
import type { CompileOptions } from "../../plan/plan.ts";
import { compareSharded } from "../helpers/shard_compare.ts";

const gpt = {
  model: gpt2,
  path: "samples/gpt2.ts",
  config: { vocab: 37, seq: 8, layers: 2, dim: 24, heads: 6 },
  batch: 2,
  seq: 8,
};

function compare(tp: number, opts: Partial<CompileOptions> = {}): void {
  const sharded = compareSharded(gpt, tp, opts);
  expect(sharded.params.filter((p) => p.shard).map((p) => p.name)).toContain("transformer.wte.weight");
}

describe("the shard pass computes, on each rank, its part of the unsharded step", () => {
  test("2 ranks, gradient clipping on", () => compare(2));
  test("3 ranks (each holds 13 of 37 rows of the vocabulary, 2 of them padding), clipping off", () => compare(3, { clip: false }));
  test("2 ranks with --checkpoint blocks: the recomputed collectives too", () => compare(2, { checkpoint: "blocks" }));
});
