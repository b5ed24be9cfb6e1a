// Overlap of data parallelism's collectives with compute: each zero_all_gather, zero_reduce_scatter and
// data-parallel all_reduce starts where the passes before placed it and gets a `wait`, the point where
// compute first uses its result, as
// an offloaded chunk's copy does (offload.ts). Between the two the collective runs beside compute (a
// non-blocking MPI call on the CPU, NCCL on a communication stream on CUDA), and its buffers stay live
// in the memory plan: the `wait` reads the result (which it aliases) and the input being sent (a
// reduce-scatter's packed gradients; a gather's shard, a temporary when it was copied from the host),
// so neither is freed or reused before the collective is done.
// - A gather (gather_params.ts started it `lookahead` gathers ahead) is waited for just before the first
//   node that reads it: it hides behind the compute of the chunks before.
// - A reduce-scatter (data_parallel.ts starts it right after its chunk's last gradient) is waited for
//   before the next chunk's gradients are packed, or before its first reader if that comes sooner: it
//   hides behind the compute of the next chunk's gradients, and at most one chunk's packed gradients
//   are in flight, which bounds the memory overlap costs to one packed chunk.
// - A data-parallel all_reduce (ZeRO 0 and 1: data_parallel.ts starts each gradient's right after it is
//   made) is waited for just before its first reader, the gradient norm or the optimizer: it hides
//   behind the rest of the backward. Its kernel copies the gradient into the result before it starts
//   (or sums it in place), so the wait keeps only the result live and costs no memory beyond the
//   gradients the blocking schedule holds anyway.
// With `overlap` false every wait follows its start at once: the blocking schedule, for comparison.
// Runs after gather-params and before adamw, whose readers then read the waits' results.
import { GraphBuilder } from "../builder.ts";
import { type Graph, type Node, type Value, valueIdBound } from "../types.ts";

/** The collectives this pass splits into a start and a wait. */
export function isOverlappable(n: Node): boolean {
  return n.op === "zero_all_gather" || n.op === "zero_reduce_scatter" || (n.op === "all_reduce" && n.attrs.group === "dp");
}

export function overlapCollectives(g: Graph, overlap: boolean): Graph {
  const position = new Map(g.nodes.map((n, i) => [n, i]));
  const firstReader = new Map<number, number>(); // value id -> position of its first reader
  g.nodes.forEach((n, i) => {
    for (const v of n.inputs) if (!firstReader.has(v.id)) firstReader.set(v.id, i);
  });
  const end = g.nodes.length;
  const starts = g.nodes.filter(isOverlappable);
  if (starts.length === 0) return g;
  // Each reduce-scatter -> where the next one's packing begins (the end for the last).
  const scatters = starts.filter((n) => n.op === "zero_reduce_scatter");
  const nextPacking = new Map<Node, number>(
    scatters.map((n, k) => [n, k + 1 < scatters.length ? position.get(scatters[k + 1].inputs[0].producer)! : end]),
  );
  const waitAt = (n: Node): number => {
    if (!overlap) return position.get(n)! + 1;
    const read = firstReader.get(n.outputs[0].id) ?? end;
    return n.op === "zero_reduce_scatter" ? Math.min(read, nextPacking.get(n)!) : read;
  };
  const waitsAt = new Map<number, Node[]>();
  for (const n of starts) {
    const at = waitAt(n);
    waitsAt.set(at, [...(waitsAt.get(at) ?? []), n]);
  }

  const b = new GraphBuilder();
  const copy = new Array<Value>(valueIdBound(g)); // old value id -> value in the new graph
  const emitWaits = (at: number) => {
    for (const n of waitsAt.get(at) ?? []) {
      // A ZeRO collective's input is sent while it runs: the wait keeps it live. An all_reduce's is not.
      const live = n.op === "all_reduce" ? [] : [copy[n.inputs[0].id]];
      copy[n.outputs[0].id] = b.value("wait", [copy[n.outputs[0].id], ...live], {}, n.loc);
    }
  };
  g.nodes.forEach((n, i) => {
    b.phase = n.phase;
    emitWaits(i);
    const made = b.copy(
      n,
      n.inputs.map((v) => copy[v.id]),
    );
    n.outputs.forEach((out, k) => (copy[out.id] = made.outputs[k]));
  });
  emitWaits(end);
  b.params.push(...g.params.map((p) => ({ ...p, value: copy[p.value.id] })));
  for (const [k, v] of Object.entries(g.named)) b.named[k] = copy[v.id];
  for (const [k, v] of Object.entries(g.grads)) b.grads[k] = copy[v.id];
  return b.build();
}
