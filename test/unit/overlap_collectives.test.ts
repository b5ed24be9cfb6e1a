// ZeRO's chunk collectives split into a start and a wait (ir/passes/overlap_collectives.ts), on GPT-2
// traced and differentiated at dp 2, ZeRO 3, in small chunks: each gather starts before the compute of
// the chunk before it and is waited for after that compute; each reduce-scatter runs beside the compute
// of the next chunk's gradients and is waited for before they are packed; the waits keep the buffers
// the collective reads and writes live. Whether the step computes the same numbers, and at the planned
// peak, is test/system/dp.test.ts's question (dp 2 against one rank). At ZeRO 0 (and 1), each
// gradient's all-reduce starts as the gradient is made and is waited for after the backward.
import { describe, expect, it } from "vitest";
import { autodiff } from "../../ir/passes/autodiff.ts";
import { averageOverDataParallel } from "../../ir/passes/data_parallel.ts";
import { gatherParams } from "../../ir/passes/gather_params.ts";
import { overlapCollectives } from "../../ir/passes/overlap_collectives.ts";
import { type ZeroSharding, layoutChunks } from "../../ir/passes/chunks.ts";
import { isComputeOp } from "../../ir/ops.ts";
import type { Graph, Node } from "../../ir/types.ts";
import { verifyGraph } from "../../ir/verify.ts";
import gpt2 from "../../samples/gpt2.ts";
import { buildModel, traceProgram } from "../../src/driver/trace_program.ts";

const config = { vocab: 13, seq: 8, layers: 2, dim: 8, heads: 2 };
const traced = autodiff(traceProgram(buildModel(gpt2, config), config, { batch: 2, seq: 6, kind: "train" }));
const zero: ZeroSharding = { stage: 3, ranks: 2, chunks: layoutChunks(traced, 2048) };
const gathered = gatherParams(averageOverDataParallel(traced, 2, zero), zero, 1);
const overlapped = overlapCollectives(gathered, true);

const starts = (g: Graph, op: "zero_all_gather" | "zero_reduce_scatter") => g.nodes.filter((n) => n.op === op);
const readers = (g: Graph, n: Node) => g.nodes.filter((m) => m.inputs.some((v) => v.producer === n));
const waitOf = (g: Graph, n: Node) => readers(g, n)[0];
/** Compute nodes that read, directly or through a view, what `n` made. */
const computeReading = (g: Graph, n: Node): Node[] =>
  readers(g, n).flatMap((m) => (isComputeOp(m.op) ? [m] : m.op === "chunk_view" || m.op === "wait" ? computeReading(g, m) : []));

describe("overlapped ZeRO collectives", () => {
  const position = new Map(overlapped.nodes.map((n, i) => [n, i]));
  const at = (n: Node) => position.get(n)!;

  it("each collective is read only by its wait, which also keeps the buffer it sends live", () => {
    verifyGraph(overlapped);
    const collectives = [...starts(overlapped, "zero_all_gather"), ...starts(overlapped, "zero_reduce_scatter")];
    expect(collectives.length).toBe(starts(gathered, "zero_all_gather").length + starts(gathered, "zero_reduce_scatter").length);
    for (const n of collectives) {
      const [wait, ...others] = readers(overlapped, n);
      expect(others).toEqual([]);
      expect(wait.op).toBe("wait");
      expect(wait.inputs).toEqual([n.outputs[0], n.inputs[0]]);
    }
  });

  it("a gather starts before the compute of the chunk gathered before it and is waited for after it", () => {
    const gathers = starts(overlapped, "zero_all_gather");
    expect(gathers.length).toBeGreaterThan(4);
    for (let k = 1; k < gathers.length; k++) {
      const neighbour = computeReading(overlapped, gathers[k - 1]).map(at);
      expect(neighbour.length).toBeGreaterThan(0);
      expect(at(gathers[k])).toBeLessThan(Math.min(...neighbour));
      expect(at(waitOf(overlapped, gathers[k]))).toBeGreaterThan(Math.min(...neighbour));
      // And is waited for before anything reads it.
      expect(at(waitOf(overlapped, gathers[k]))).toBeLessThan(Math.min(...computeReading(overlapped, gathers[k]).map(at)));
    }
  });

  it("a reduce-scatter runs beside the compute of the next chunk's gradients and is waited for before they are packed", () => {
    const scatters = starts(overlapped, "zero_reduce_scatter");
    expect(scatters.length).toBeGreaterThan(2);
    for (let k = 0; k + 1 < scatters.length; k++) {
      const pack = scatters[k + 1].inputs[0].producer;
      const wait = waitOf(overlapped, scatters[k]);
      expect(at(wait)).toBeLessThan(at(pack));
      // Some gradient the next chunk packs is computed while this one is in flight.
      const between = pack.inputs.map((v) => at(v.producer)).filter((i) => i > at(scatters[k]) && i < at(wait));
      expect(between.length).toBeGreaterThan(0);
    }
  });

  it("without overlap every wait follows its collective at once: the blocking schedule", () => {
    const blocking = overlapCollectives(gathered, false);
    verifyGraph(blocking);
    blocking.nodes.forEach((n, i) => {
      if (n.op === "zero_all_gather" || n.op === "zero_reduce_scatter") {
        expect(blocking.nodes[i + 1].op).toBe("wait");
        expect(blocking.nodes[i + 1].inputs[0]).toBe(n.outputs[0]);
      }
    });
  });
});

describe("overlapped gradient all-reduces (ZeRO 0 and 1)", () => {
  const averaged = averageOverDataParallel(traced, 2);
  const overlappedAll = overlapCollectives(averaged, true);
  const position = new Map(overlappedAll.nodes.map((n, i) => [n, i]));
  const at = (n: Node) => position.get(n)!;
  const gradReduces = Object.values(overlappedAll.grads).map((v) => v.producer);

  it("each gradient's all-reduce starts right after the gradient is made, before the rest of the backward", () => {
    verifyGraph(overlappedAll);
    expect(gradReduces.length).toBe(Object.keys(traced.grads).length);
    expect(gradReduces.every((n) => n.op === "wait")).toBe(true);
    const starts = gradReduces.map((w) => w.inputs[0].producer);
    for (const n of starts) {
      expect(n.op).toBe("all_reduce");
      // Only other gradients' all-reduces (of the same producer: a norm's weight and bias) come between.
      const between = overlappedAll.nodes.slice(at(n.inputs[0].producer) + 1, at(n));
      expect(between.every((m) => m.op === "all_reduce" && m.inputs[0].producer === n.inputs[0].producer)).toBe(true);
    }
    // All but the last gradient's all-reduce have backward compute after them and before their wait.
    const backwardCompute = overlappedAll.nodes.filter((n) => n.phase === "backward" && isComputeOp(n.op) && n.op !== "all_reduce");
    const lastCompute = Math.max(...backwardCompute.map(at));
    const hidden = starts.filter((n) => at(n) < lastCompute);
    expect(hidden.length).toBe(starts.length - 1);
    for (const n of starts) expect(at(waitOf(overlappedAll, n))).toBeGreaterThan(lastCompute);
  });

  it("the wait reads only the result: the all-reduce copied or summed its gradient in place when it started", () => {
    for (const w of gradReduces) {
      const start = w.inputs[0].producer;
      expect(readers(overlappedAll, start)).toEqual([w]);
      expect(w.inputs).toEqual([start.outputs[0]]);
    }
  });

  it("without overlap each all-reduce is waited for at once", () => {
    const blocking = overlapCollectives(averaged, false);
    blocking.nodes.forEach((n, i) => {
      if (n.op === "all_reduce") expect(blocking.nodes[i + 1]).toMatchObject({ op: "wait", inputs: [n.outputs[0]] });
    });
  });
});
