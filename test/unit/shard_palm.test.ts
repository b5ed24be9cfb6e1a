// PaLM (samples/palm.ts) under the shard pass, in float64 on simulated ranks against the unsharded step
// (test/helpers/shard_compare.ts): q_proj split by heads with the single K/V head replicated (its
// gradient summed over the ranks' query heads), or K/V split by heads when there are several; SwiGLU
// split by its width; the shared embedding, the scaled LM head and the loss split by the vocabulary
// (37, a prime, so padded).
import { expectSettingError } from "../helpers/expect_error.ts";
import { describe, expect, test } from "vitest";
import palm from "../../samples/palm.ts";
import { parseGraph } from "../../ir/parser.ts";
import { ShardError, shard } from "../../ir/passes/shard.ts";
import type { Graph } from "../../ir/types.ts";
import type { CompileOptions } from "../../plan/plan.ts";
import { TraceError } from "../../src/dsl/trace.ts";
import { compareSharded, trainingStep } from "../helpers/shard_compare.ts";

const tiny = (kvHeads: number) => ({
  model: palm,
  path: "samples/palm.ts",
  config: { vocab: 37, seq: 8, layers: 2, dim: 32, heads: 4, kv_heads: kvHeads },
  batch: 2,
  seq: 8,
});

function shardedNames(g: Graph): string[] {
  return g.params
    .filter((p) => p.shard)
    .map((p) => p.name.replace(/^h\.\d+\./, "h.*."))
    .filter((n, i, all) => all.indexOf(n) === i);
}

function compare(kvHeads: number, tp: number, opts: Partial<CompileOptions> = {}): Graph {
  return compareSharded(tiny(kvHeads), tp, opts);
}

describe("PaLM sharded: each rank computes its part of the unsharded step", () => {
  test("multi-query at 2 ranks, clipping on: K/V replicated, their gradients summed over the ranks", () => {
    const g = compare(1, 2);
    expect(shardedNames(g)).toEqual([
      "wte.weight",
      "h.*.attn.q_proj.weight",
      "h.*.attn.out_proj.weight",
      "h.*.mlp.gate.weight",
      "h.*.mlp.up.weight",
      "h.*.mlp.down.weight",
    ]);
    // Each rank attends with its 2 query heads to the whole K/V head, which goes through tp_copy.
    const attention = g.nodes.filter((n) => n.op === "attention");
    expect(attention.map((n) => [n.inputs[0].shape[1], n.inputs[1].shape[1]])).toEqual([
      [2, 1],
      [2, 1],
    ]);
    for (const n of attention) expect([n.inputs[1].producer.op, n.inputs[2].producer.op]).toEqual(["tp_copy", "tp_copy"]);
  });
  test("multi-query at 4 ranks, one query head each, clipping off", () => compare(1, 4, { clip: false }));
  test("multi-query at 2 ranks with --checkpoint blocks: the recomputed collectives too", () => compare(1, 2, { checkpoint: "blocks" }));
  test("grouped-query (2 K/V heads) at 2 ranks: K/V split by heads, one K/V head per rank", () => {
    const g = compare(2, 2);
    expect(shardedNames(g)).toContain("h.*.attn.k_proj.weight");
    expect(g.nodes.filter((n) => n.op === "attention").map((n) => [n.inputs[0].shape[1], n.inputs[1].shape[1]])).toEqual([
      [2, 1],
      [2, 1],
    ]);
  });
});

describe("PaLM's unsupported degrees are refused, naming the heads and the model line", () => {
  function refusal(kvHeads: number, tp: number): TraceError {
    try {
      trainingStep(tiny(kvHeads), tp, {});
    } catch (e) {
      if (e instanceof TraceError) return e;
      throw e;
    }
    throw new Error(`--tp ${tp} with ${kvHeads} K/V heads compiled`);
  }
  test("2 K/V heads over 4 ranks", () => {
    const e = refusal(2, 4);
    expect(e.message).toMatch(
      /--tp 4 cannot split this reshape .* 4 ranks do not divide dimension 2 \(of size 2\) \(the 2 key\/value heads\)/,
    );
    expect(e.loc?.file).toMatch(/samples\/palm\.ts$/);
  });
  test("4 query heads over 8 ranks", () => {
    expect(refusal(1, 8).message).toMatch(/8 ranks do not divide dimension 2 \(of size 4\) \(the 4 attention heads\)/);
  });
});

test("whole K/V of several heads beside query heads split across ranks is refused at the attention's line", () => {
  // 4 query heads cut over 2 ranks; 2 K/V heads whole on each rank. Rank 1's query heads 2 and 3 read
  // K/V head 1, but a local attention would pair its first query head with K/V head 0.
  const g = parseGraph(`# forward
  %0 = param() {name="q", shape=[8,8], parallel="column"} : f32[8,8]
  %1 = param() {name="k", shape=[4,8]} : f32[4,8]
  %2 = input() {name="x", shape=[4,8], dtype="f32"} : f32[4,8]
  %3 = matmul(%2, %0) {ta=false, tb=true} : f32[4,8]
  %4 = reshape(%3) {shape=[1,4,4,2]} : f32[1,4,4,2]
  %5 = transpose(%4) {perm=[0,2,1,3]} : f32[1,4,4,2]
  %6 = matmul(%2, %1) {ta=false, tb=true} : f32[4,4]
  %7 = reshape(%6) {shape=[1,4,2,2]} : f32[1,4,2,2]
  %8 = transpose(%7) {perm=[0,2,1,3]} : f32[1,2,4,2]
  %9, %10 = attention(%5, %8, %8) : f32[1,4,4,2], f32[1,4,4]  # m.ts:7:3
# results: x=%2
`);
  const error = expectSettingError(
    () => shard(g, 2),
    /--tp 2 splits the 4 query heads of this attention across the ranks, but its 2 key\/value heads are whole on every rank: only a single K\/V head can be replicated/,
  );
  expect(error).toBeInstanceOf(ShardError);
  expect((error as ShardError).loc).toEqual({ file: "m.ts", line: 7, col: 3 });
});
