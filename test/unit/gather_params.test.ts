// ZeRO 3's gathers (ir/passes/gather_params.ts) on GPT-2 traced, differentiated and unrolled over two
// micro-batches: no node reads a parameter any more; each reads a view of a gathered chunk at the
// parameter's offset in it (chunks.ts); each stretch of one phase gathers each chunk it reads once; and
// a gather starts `lookahead` gathers before its first reader. Whether the step still computes the same
// numbers is test/system/dp.test.ts's question (dp 2 at ZeRO 3 against one rank).
import { describe, expect, it } from "vitest";
import { autodiff } from "../../ir/passes/autodiff.ts";
import { accumulateGradients } from "../../ir/passes/grad_accum.ts";
import { averageOverDataParallel } from "../../ir/passes/data_parallel.ts";
import { gatherParams } from "../../ir/passes/gather_params.ts";
import { type ZeroSharding, layoutChunks, shardElements } from "../../ir/passes/chunks.ts";
import type { Graph, NodeOf } from "../../ir/types.ts";
import { verifyGraph } from "../../ir/verify.ts";
import gpt2 from "../../samples/gpt2.ts";
import { buildModel, traceProgram } from "../../src/driver/trace_program.ts";

const config = { vocab: 13, seq: 8, layers: 2, dim: 8, heads: 2 };
const traced = accumulateGradients(autodiff(traceProgram(buildModel(gpt2, config), config, { batch: 2, seq: 6, kind: "train" })), 2);
// Small chunks, so that a layer's parameters span several.
const zero: ZeroSharding = { stage: 3, ranks: 2, chunks: layoutChunks(traced, 2048) };
const step = averageOverDataParallel(traced, 2, zero);

/** The stretch of one phase each node lies in (a new one wherever the phase changes). */
const stretches = (g: Graph) => g.nodes.map((n, i) => g.nodes.slice(1, i + 1).filter((m, k) => m.phase !== g.nodes[k].phase).length);

describe("ZeRO 3 gathers", () => {
  it("every parameter read is a view of its gathered chunk, at the parameter's offset", () => {
    const g = gatherParams(step, zero, 1);
    verifyGraph(g);
    const params = new Set(g.params.map((p) => p.value.id));
    expect(g.nodes.filter((n) => n.inputs.some((v) => params.has(v.id)))).toEqual([]);
    // Views of parameters (grad-accum's views of the inputs' rows are views too).
    const names = new Set(g.params.map((p) => p.name));
    const views = g.nodes.filter((n): n is NodeOf<"chunk_view"> => n.op === "chunk_view" && names.has(n.attrs.name!));
    expect(views.length).toBeGreaterThan(0);
    for (const v of views) {
      const gather = v.inputs[0].producer;
      expect(gather.op).toBe("zero_all_gather");
      const attrs = gather.attrs as { chunk: number; shard: number };
      const chunk = zero.chunks.chunks[attrs.chunk];
      const name = v.attrs.name!;
      expect(chunk.params).toContain(name);
      expect(v.attrs.offset).toBe(chunk.offsets.get(name));
      expect(attrs.shard).toBe(shardElements(chunk, 2));
      expect(gather.inputs[0].producer.op).toBe("zero_param_shard");
    }
  });

  it("each stretch of one phase gathers each chunk it reads once: twice per micro-batch, four times a step", () => {
    const before = stretches(step);
    const reads = new Set<string>();
    step.nodes.forEach((n, i) => {
      for (const v of n.inputs) {
        const p = step.params.find((q) => q.value.id === v.id);
        if (p) reads.add(`${before[i]} ${zero.chunks.chunkOf.get(p.name)}`);
      }
    });
    expect(new Set([...reads].map((r) => r.split(" ")[0])).size).toBe(4); // forward, backward, twice
    const g = gatherParams(step, zero, 0);
    expect(g.nodes.filter((n) => n.op === "zero_all_gather").length).toBe(reads.size);
  });

  it("a gather starts `lookahead` gathers before its first reader", () => {
    for (const lookahead of [0, 1, 2]) {
      const g = gatherParams(step, zero, lookahead);
      const position = new Map(g.nodes.map((n, i) => [n, i]));
      const gathers = g.nodes.filter((n) => n.op === "zero_all_gather");
      // A gather's first reader is its first view's first reader.
      const firstReader = gathers.map((gather) => {
        const views = new Set(g.nodes.filter((n) => n.inputs.some((v) => v.producer === gather)).map((n) => n.outputs[0].id));
        return g.nodes.findIndex((n) => n.inputs.some((v) => views.has(v.id)));
      });
      gathers.forEach((gather, k) => {
        const at = position.get(gather)!;
        if (k < lookahead) expect(at).toBeLessThan(firstReader[0]);
        else {
          // After the reader `lookahead` gathers back was reached, and before anything that reader precedes.
          expect(at).toBeLessThan(firstReader[k - lookahead]);
          expect(at).toBeGreaterThan(k - lookahead > 0 ? firstReader[k - lookahead - 1] : -1);
        }
      });
    }
  });
});
