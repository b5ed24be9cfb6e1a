// The gradient of a tied embedding is a sum: the LM head's (V, C) gradient plus the embedding's, which
// embedding_bwd writes as another (V, C) tensor of mostly zeros. This pass adds the embedding's rows
// into the other gradient directly (embedding_bwd_acc, in place when that gradient dies there), so the
// step never holds the second (V, C) tensor. The sum is computed as before, so results do not change.
import { GraphBuilder } from "../builder.ts";
import type { Graph, Node, Value } from "../types.ts";

export function accumulateEmbeddingGrads(g: Graph): Graph {
  const uses = new Map<number, number>();
  for (const n of g.nodes) for (const v of n.inputs) uses.set(v.id, (uses.get(v.id) ?? 0) + 1);
  for (const v of [...Object.values(g.named), ...Object.values(g.grads)]) uses.set(v.id, (uses.get(v.id) ?? 0) + 1);
  const soleEmbeddingGrad = (v: Value) => v.producer.op === "embedding_bwd" && uses.get(v.id) === 1;
  const fused = new Map<Node, { acc: Value; grad: Node }>(); // add node -> what it becomes
  for (const n of g.nodes) {
    if (n.op !== "add") continue;
    const [a, b] = n.inputs;
    if (a.shape.length !== 2 || a.shape.join() !== b.shape.join()) continue;
    if (soleEmbeddingGrad(b)) fused.set(n, { acc: a, grad: b.producer });
    else if (soleEmbeddingGrad(a)) fused.set(n, { acc: b, grad: a.producer });
  }
  if (fused.size === 0) return g;
  const dropped = new Set([...fused.values()].map((f) => f.grad));

  const b = new GraphBuilder();
  const copy = new Map<number, Value>();
  for (const n of g.nodes) {
    if (dropped.has(n)) continue;
    b.phase = n.phase;
    const f = fused.get(n);
    const made = f
      ? b.add("embedding_bwd_acc", [copy.get(f.acc.id)!, ...f.grad.inputs.map((v) => copy.get(v.id)!)], {}, f.grad.loc)
      : b.copy(
          n,
          n.inputs.map((v) => copy.get(v.id)!),
        );
    n.outputs.forEach((v, i) => copy.set(v.id, made.outputs[i]));
  }
  b.params.push(...g.params.map((p) => ({ ...p, value: copy.get(p.value.id)! })));
  for (const [k, v] of Object.entries(g.named)) b.named[k] = copy.get(v.id)!;
  for (const [k, v] of Object.entries(g.grads)) b.grads[k] = copy.get(v.id)!;
  return b.build();
}
