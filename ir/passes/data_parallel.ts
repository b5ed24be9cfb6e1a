// Data parallelism: every data-parallel rank runs the same program on its own rows of the global batch,
// so its loss is the mean over its rows and its gradients are those of that mean. The global batch's
// loss and gradients are the means of the ranks' (the rows are split evenly), so this pass averages
// each parameter's gradient and the loss over the data-parallel group with an all_reduce (mean) after
// the backward, before the optimizer reads them. AdamW and the gradient norm (adamw pass) then see the
// global gradient on every rank, and every replica makes the same update.
// Runs after recompute and before adamw. The collectives are IR nodes, so the plan counts their bytes
// (ir/collectives.ts) and the cost model times them as it times tensor-parallel ones.
import { GraphBuilder } from "../builder.ts";
import { type Graph, trainedParams } from "../types.ts";

export function averageOverDataParallel(g: Graph, dp: number): Graph {
  if (dp === 1) return g;
  const b = GraphBuilder.extend(g);
  b.phase = "backward";
  for (const p of trainedParams(g)) {
    const grad = g.grads[p.name];
    if (!grad) throw new Error(`internal: no gradient for ${p.name}; run autodiff first`);
    b.grads[p.name] = b.value("all_reduce", [grad], { reduce: "mean", group: "dp" }, p.loc);
  }
  const loss = g.named.loss;
  b.named.loss = b.value("all_reduce", [loss], { reduce: "mean", group: "dp" }, loss.producer.loc);
  return b.build();
}
