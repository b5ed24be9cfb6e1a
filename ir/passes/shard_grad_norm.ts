// The global gradient norm under tensor parallelism. A split parameter's gradient on a rank is its part
// of the whole gradient, while a replicated parameter's gradient is whole on every rank. So the squares
// of the split gradients are summed on each rank and all-reduced, those of the replicated ones are
// counted once, and the norm is the square root of the two sums: the norm of the whole gradient, the
// same on every rank. Replaces the grad_norm node of the adamw pass; runs last, since early_update and
// offload look for grad_norm.
import { GraphBuilder } from "../builder.ts";
import type { Graph, Value } from "../types.ts";

export function shardGradNorm(g: Graph): Graph {
  const norm = g.nodes.find((n) => n.op === "grad_norm");
  if (!norm || !g.params.some((p) => p.shard)) return g;
  const split = new Set(g.params.filter((p) => p.shard).map((p) => g.grads[p.name].id));
  const b = new GraphBuilder();
  const copy = new Map<number, Value>(); // old value id -> value in the new graph
  for (const n of g.nodes) {
    b.phase = n.phase;
    const inputs = n.inputs.map((v) => copy.get(v.id)!);
    if (n !== norm) {
      const made = b.copy(n, inputs);
      n.outputs.forEach((v, k) => copy.set(v.id, made.outputs[k]));
      continue;
    }
    // The gradients as the grad_norm node reads them (host copies when model data is offloaded).
    const ofSplit = inputs.filter((_, k) => split.has(sourceGrad(n.inputs[k]).id));
    const ofWhole = inputs.filter((v) => !ofSplit.includes(v));
    const squares = [b.value("all_reduce", [b.value("sum_squares", ofSplit, {}, n.loc)], { reduce: "sum" }, n.loc)];
    if (ofWhole.length > 0) squares.push(b.value("sum_squares", ofWhole, {}, n.loc));
    copy.set(n.outputs[0].id, b.value("norm_from_squares", squares, {}, n.loc));
  }
  b.params.push(...g.params.map((p) => ({ ...p, value: copy.get(p.value.id)! })));
  for (const [k, v] of Object.entries(g.named)) b.named[k] = copy.get(v.id)!;
  for (const [k, v] of Object.entries(g.grads)) b.grads[k] = copy.get(v.id)!;
  return b.build();
}

/** The device gradient behind a host copy (offloaded model data), or the value itself. */
function sourceGrad(v: Value): Value {
  return v.producer.op === "copy_d2h" ? v.producer.inputs[0] : v;
}
