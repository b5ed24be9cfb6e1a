// Data parallelism: every data-parallel rank runs the same program on its own rows of the global batch,
// so its loss is the mean over its rows and its gradients are those of that mean. The global batch's
// loss and gradients are the means of the ranks' (the rows are split evenly), so this pass averages
// each parameter's gradient and the loss over the data-parallel group with an all_reduce (mean) before
// the optimizer reads them. AdamW and the gradient norm (adamw pass) then see the global gradient on
// every rank, and every replica makes the same update. Each gradient's all_reduce comes right after the
// gradient is made, so that it can run beside the rest of the backward (overlap_collectives.ts).
// Under ZeRO 2 (and 3) each rank needs only its shard of each chunk's gradient: per chunk, the gradients are
// packed at their parameters' offsets (zero_pack) and reduce-scattered (the mean, this rank's shard
// kept), right after the last of its gradients is made, so the whole gradients die during the backward
// instead of piling up to its end. The shards are kept in `grads` under shardGradKey (each parameter's
// own, not averaged, stays there too, which the optimizer does not read).
// Runs after recompute and before adamw. The collectives are IR nodes, so the plan counts their bytes
// (ir/collectives.ts) and the cost model times them as it times tensor-parallel ones.
import { GraphBuilder } from "../builder.ts";
import { type Graph, type Node, trainedParams } from "../types.ts";
import { type ZeroSharding, shardElements, shardGradKey } from "./chunks.ts";
import { refuseBuffersUnderZero } from "./adamw.ts";

export function averageOverDataParallel(g: Graph, dp: number, zero?: ZeroSharding): Graph {
  if (dp === 1) return g;
  const b = GraphBuilder.extend(g);
  b.phase = "backward";
  const position = new Map(g.nodes.map((n, i) => [n, i]));
  const after = new Map<Node, Node[]>(); // a gradient's producer -> the collectives that follow it
  const follow = (producer: Node, ...nodes: Node[]) => after.set(producer, [...(after.get(producer) ?? []), ...nodes]);
  if (zero && zero.stage >= 2) {
    refuseBuffersUnderZero(g, zero);
    const byName = new Map(g.params.map((p) => [p.name, p]));
    for (const chunk of zero.chunks.chunks) {
      const params = chunk.params.map((name) => byName.get(name)!);
      const shard = shardElements(chunk, dp);
      const loc = params[0].loc;
      const offsets = params.map((p) => chunk.offsets.get(p.name)! / 4);
      const grads = params.map((p) => g.grads[p.name]);
      const packed = b.value("zero_pack", grads, { chunk: chunk.index, shard, ranks: dp, offsets }, loc);
      b.grads[shardGradKey(chunk.index)] = b.value("zero_reduce_scatter", [packed], { chunk: chunk.index, shard, ranks: dp }, loc);
      const last = grads.map((v) => v.producer).reduce((x, y) => (position.get(x)! > position.get(y)! ? x : y));
      follow(last, packed.producer, b.grads[shardGradKey(chunk.index)].producer);
    }
  } else {
    for (const p of trainedParams(g)) {
      const grad = g.grads[p.name];
      if (!grad) throw new Error(`internal: no gradient for ${p.name}; run autodiff first`);
      b.grads[p.name] = b.value("all_reduce", [grad], { reduce: "mean", group: "dp" }, p.loc);
      follow(grad.producer, b.grads[p.name].producer);
    }
  }
  const moved = new Set([...after.values()].flat());
  const nodes = b.nodes.filter((n) => !moved.has(n)).flatMap((n) => [n, ...(after.get(n) ?? [])]);
  // Not splice(0, n, ...nodes): a large graph's nodes as one call's arguments overflow the stack.
  b.nodes.length = 0;
  for (const n of nodes) b.nodes.push(n);
  const loss = g.named.loss;
  b.named.loss = b.value("all_reduce", [loss], { reduce: "mean", group: "dp" }, loss.producer.loc);
  return b.build();
}
