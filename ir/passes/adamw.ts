// Appends the optimizer: AdamW on every parameter but the buffers, with two persistent moments, and, when gradient
// clipping is on, one global gradient norm that scales every update (as torch clip_grad_norm_).
import { GraphBuilder } from "../builder.ts";
import { type Graph, trainedParams } from "../types.ts";

export interface OptimizerOptions {
  /** Compute the global gradient norm (needed for clipping and reported in metrics). */
  clip: boolean;
}

export function adamwPass(g: Graph, opts: OptimizerOptions): Graph {
  const b = GraphBuilder.extend(g);
  b.phase = "optimizer";
  const trained = trainedParams(g); // buffers have no gradient and no moments
  const grads = trained.map((p) => {
    const dp = g.grads[p.name];
    if (!dp) throw new Error(`internal: no gradient for ${p.name}; run autodiff first`);
    return dp;
  });
  const norm = opts.clip ? b.value("grad_norm", grads) : undefined;
  if (norm) b.named.grad_norm = norm;
  trained.forEach((p, i) => {
    const m = b.value("opt_state", [], { name: `opt.m.${p.name}`, shape: p.shape }, p.loc);
    const v = b.value("opt_state", [], { name: `opt.v.${p.name}`, shape: p.shape }, p.loc);
    const inputs = norm ? [p.value, grads[i], m, v, norm] : [p.value, grads[i], m, v];
    b.add("adamw", inputs, { decay: p.decay }, p.loc);
  });
  return b.build();
}
