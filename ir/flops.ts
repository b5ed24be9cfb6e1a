// Floating-point operations of graphs, from each op's record in the registry (ir/ops.ts): a cost model
// for reports and for choosing what to recompute.
import { type LmHeadWork, type OpDef, type OpName, lmHeadWork as lmHeadWorkOf, opDef } from "./ops.ts";
import type { Graph, Node, NodeOf } from "./types.ts";

/** A node's FLOPs, from its op's record in the registry. */
export function nodeFlops(n: Node): number {
  const def = opDef(n.op) as OpDef;
  return def.flops?.(n as NodeOf<OpName>) ?? 0;
}

/** The fused LM head's work (its products and softmax), for the cost model's per-tile rates. */
export function lmHeadWork(n: NodeOf<"linear_cross_entropy" | "linear_cross_entropy_bwd">): LmHeadWork {
  return lmHeadWorkOf(n.inputs, n.attrs, n.op === "linear_cross_entropy");
}

export function graphFlops(g: Graph, keep: (n: Node) => boolean = () => true): number {
  return g.nodes.filter(keep).reduce((s, n) => s + nodeFlops(n), 0);
}

/** FLOPs spent recomputing forward nodes in the backward. */
export function recomputeFlops(g: Graph): number {
  return graphFlops(g, (n) => n.attrs.recompute === true);
}
