// Floating-point operations of each op, as its CPU kernel performs them (a cost model for reports and
// for choosing what to recompute). Products count 2 per multiply-add; elementwise work counts a few
// operations per element, which is small next to the products.
import { attentionDims, lmHeadDims } from "./ops.ts";
import { type Graph, type Node, numel } from "./types.ts";

const ELEMENTWISE: Readonly<Record<string, number>> = {
  add: 1, mul: 1, scale: 1, sum_rows: 1, gelu: 20, gelu_bwd: 30, layernorm: 8, layernorm_bwd: 16,
  cross_entropy: 4, cross_entropy_bwd: 5, embedding_bwd: 1, adamw: 12, grad_norm: 2,
  rope: 3, silu: 10, silu_bwd: 15,
};

export function nodeFlops(n: Node): number {
  if (n.op === "matmul") {
    const [a] = n.inputs;
    const out = n.outputs[0].shape;
    const K = n.attrs.ta === true ? a.shape[a.shape.length - 2] : a.shape[a.shape.length - 1];
    return 2 * numel(out) * K;
  }
  if (n.op === "attention" || n.op === "attention_bwd") {
    const { BH, T, D } = attentionDims(n.inputs[0].shape);
    // The kernels run full T x T products: two in the forward, five in the backward.
    return (n.op === "attention" ? 2 : 5) * 2 * BH * T * T * D;
  }
  if (n.op === "linear_cross_entropy" || n.op === "linear_cross_entropy_bwd") {
    const w = lmHeadWork(n);
    return w.productFlops + w.flopsPerLogit * w.logits;
  }
  const perElement = ELEMENTWISE[n.op] ?? 0;
  return perElement * numel(n.inputs[0]?.shape ?? []);
}

/** The fused LM head's work: its products (over tiles of `tileFlops` each) and the softmax over its logits. */
export interface LmHeadWork {
  productFlops: number;
  /** FLOPs of one tile's product: the size each sgemm call runs at. */
  tileFlops: number;
  logits: number;
  flopsPerLogit: number;
}

export function lmHeadWork(n: Node): LmHeadWork {
  const { N, C, V, rows, cols } = lmHeadDims(n.inputs, n.attrs);
  const forward = n.op === "linear_cross_entropy";
  // The forward's product and softmax; the backward recomputes the product, then dx and dW.
  return { productFlops: (forward ? 1 : 3) * 2 * N * V * C, tileFlops: 2 * rows * cols * C, logits: N * V, flopsPerLogit: forward ? 4 : 5 };
}

export function graphFlops(g: Graph, keep: (n: Node) => boolean = () => true): number {
  return g.nodes.filter(keep).reduce((s, n) => s + nodeFlops(n), 0);
}

/** FLOPs spent recomputing forward nodes in the backward. */
export function recomputeFlops(g: Graph): number {
  return graphFlops(g, (n) => n.attrs.recompute === true);
}
