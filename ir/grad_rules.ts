// The gradient of every differentiable op, defined once. A rule receives the forward node, the
// gradients of its outputs (undefined where an output has none), and which inputs need a gradient;
// it appends backward nodes and returns one gradient (or undefined) per input.
import type { GraphBuilder } from "./builder.ts";
import { type AttrsOf, type OpName, isComparison } from "./op_attrs.ts";
import { binaryBroadcast } from "./ops.ts";
import { type Node, type NodeOf, type Value, numel, shapeEq } from "./types.ts";

export type GradRule<K extends OpName = OpName> = (
  b: GraphBuilder,
  n: NodeOf<K>,
  dys: (Value | undefined)[],
  wants: boolean[],
) => (Value | undefined)[];

/**
 * The rule table has an entry for every op. NONE marks ops that autodiff never differentiates through:
 * leaves, backward and optimizer ops, copies made after autodiff, and statistics (the vocabulary-
 * parallel row max and sums) whose consumer gives them no gradient.
 */
const NONE = null;

function emitter(b: GraphBuilder, n: Node) {
  return <K extends OpName>(op: K, inputs: Value[], attrs?: AttrsOf<K>) => [...b.add(op, inputs, attrs, n.loc).outputs];
}

/** Sums a broadcast gradient back to the operand's (suffix) shape. */
function reduceTo(b: GraphBuilder, n: Node, dy: Value, target: Value): Value {
  if (shapeEq(dy.shape, target.shape)) return dy;
  return b.add("sum_rows", [dy], { to: target.shape }, n.loc).outputs[0];
}

/** Sums a gradient in a's shape back to `binary`'s broadcast right operand b (binaryBroadcast). */
function sumToOperand(b: GraphBuilder, n: Node, d: Value, A: Value, B: Value): Value {
  const { inner, nb } = binaryBroadcast(A.shape, B.shape)!;
  if (inner === 1) return reduceTo(b, n, d, B);
  const e = emitter(b, n);
  const rows = numel(A.shape) / inner;
  const perRow = e("reduce", e("reshape", [d], { shape: [rows, inner] }), { fn: "sum" })[0];
  const flat = e("reshape", [perRow], { shape: [rows / nb, nb] })[0];
  const summed = rows === nb ? flat : e("sum_rows", [flat], { to: [nb] })[0];
  return e("reshape", [summed], { shape: B.shape })[0];
}

function inversePerm(perm: readonly number[]): number[] {
  const inv = new Array<number>(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  return inv;
}

export const GRAD_RULES: { readonly [K in OpName]: GradRule<K> | typeof NONE } = {
  embedding(b, n, [dy], wants) {
    const [table, idx] = n.inputs;
    return [wants[0] ? emitter(b, n)("embedding_bwd", [idx, dy!], { V: table.shape[0] })[0] : undefined, undefined];
  },

  // Y = op(A) op(B). Transposes stay flags: every gradient is one more matmul.
  matmul(b, n, [dy], wants) {
    const [A, B] = n.inputs;
    const ta = n.attrs.ta === true;
    const tb = n.attrs.tb === true;
    const e = emitter(b, n);
    const dA = !wants[0]
      ? undefined
      : ta
        ? e("matmul", [B, dy!], { ta: tb, tb: true })[0]
        : e("matmul", [dy!, B], { ta: false, tb: !tb })[0];
    const dB = !wants[1]
      ? undefined
      : tb
        ? e("matmul", [dy!, A], { ta: true, tb: ta })[0]
        : e("matmul", [A, dy!], { ta: !ta, tb: false })[0];
    return [dA, dB];
  },

  add(b, n, [dy], wants) {
    const [, B] = n.inputs;
    return [wants[0] ? dy : undefined, wants[1] ? reduceTo(b, n, dy!, B) : undefined];
  },

  mul(b, n, [dy], wants) {
    const [A, B] = n.inputs;
    const e = emitter(b, n);
    return [wants[0] ? e("mul", [dy!, B])[0] : undefined, wants[1] ? reduceTo(b, n, e("mul", [dy!, A])[0], B) : undefined];
  },

  scale(b, n, [dy]) {
    return [emitter(b, n)("scale", [dy!], { s: n.attrs.s })[0]];
  },

  layernorm(b, n, [dy]) {
    const [x, w] = n.inputs;
    const noBias = n.inputs.length === 2;
    const [dx, dw, db] = emitter(b, n)("layernorm_bwd", [x, w, dy!], { eps: n.attrs.eps, ...(noBias && { bias: false }) });
    return noBias ? [dx, dw] : [dx, dw, db];
  },

  unary(b, n, [dy]) {
    return [emitter(b, n)("unary_bwd", [n.inputs[0], dy!], n.attrs)[0]];
  },

  // Each operand's gradient in a's shape; b's is then summed back over the axes it was broadcast on.
  // A comparison's mask is flat where it is defined: no gradient flows through it.
  binary(b, n, [dy], wants) {
    if (isComparison(n.attrs.fn)) return [undefined, undefined];
    const [A, B] = n.inputs;
    const e = emitter(b, n);
    const fn = n.attrs.fn;
    const dA = wants[0] ? e("binary_bwd", [A, B, dy!], { fn, side: 0 })[0] : undefined;
    const dB = wants[1] ? sumToOperand(b, n, e("binary_bwd", [A, B, dy!], { fn, side: 1 })[0], A, B) : undefined;
    return [dA, dB];
  },

  reduce(b, n, [dy]) {
    const [x] = n.inputs;
    const e = emitter(b, n);
    if (n.attrs.fn === "max") return [e("reduce_bwd", [x, n.outputs[0], dy!], n.attrs)[0]];
    return [e("reduce_bwd", [dy!], { fn: n.attrs.fn, C: x.shape[x.shape.length - 1] })[0]];
  },

  gelu(b, n, [dy]) {
    return [emitter(b, n)("gelu_bwd", [n.inputs[0], dy!])[0]];
  },

  // A mask that depends on a parameter (a learned bias) gets its gradient as the backward's fourth
  // output; a constant one asks for none, so its backward is the one it always was.
  attention(b, n, [dy, dlse], wants) {
    if (dlse) throw new Error("internal: the log-sum-exp output of attention has no gradient");
    const [q, k, v, mask] = n.inputs;
    const [y, lse] = n.outputs;
    const attrs = { ...(n.attrs.causal === false ? { causal: false } : {}), ...(wants[3] ? { maskGrad: true } : {}) };
    const [dq, dk, dv, dmask] = emitter(b, n)("attention_bwd", [q, k, v, y, lse, dy!, ...(mask ? [mask] : [])], attrs);
    return [dq, dk, dv, ...(mask ? [dmask] : [])];
  },

  // y = x m / (1 - p) with a mask m fixed by (seed, step, index): dx = dy m / (1 - p), the same op on dy.
  dropout(b, n, [dy]) {
    return [emitter(b, n)("dropout", [dy!], { p: n.attrs.p, seed: n.attrs.seed })[0]];
  },

  cross_entropy(b, n, [dloss], wants) {
    const [logits, targets] = n.inputs;
    return [wants[0] ? emitter(b, n)("cross_entropy_bwd", [logits, targets, dloss!])[0] : undefined, undefined];
  },

  // The backward recomputes the logits tile by tile from x and W; lse saves a pass over them.
  linear_cross_entropy(b, n, [dloss, dlse], wants) {
    if (dlse) throw new Error("internal: the log-sum-exp output of linear_cross_entropy has no gradient");
    const [x, w, targets] = n.inputs;
    const [, lse] = n.outputs;
    const [dx, dw] = emitter(b, n)("linear_cross_entropy_bwd", [x, w, targets, lse, dloss!], n.attrs);
    return [wants[0] ? dx : undefined, wants[1] ? dw : undefined, undefined];
  },

  reshape(b, n, [dy]) {
    return [emitter(b, n)("reshape", [dy!], { shape: n.inputs[0].shape })[0]];
  },

  transpose(b, n, [dy]) {
    return [emitter(b, n)("transpose", [dy!], { perm: inversePerm(n.attrs.perm) })[0]];
  },

  split(b, n, dys) {
    const e = emitter(b, n);
    const parts = n.outputs.map((out, i) => dys[i] ?? e("fill", [], { shape: out.shape, value: 0 })[0]);
    return [e("concat", parts)[0]];
  },

  // Along the last axis the parts are one split; along another, a slice each.
  concat(b, n, [dy]) {
    const e = emitter(b, n);
    const rank = n.outputs[0].shape.length;
    const dim = n.attrs.axis ?? rank - 1;
    if (dim === rank - 1) return e("split", [dy!], { sizes: n.inputs.map((x) => x.shape[dim]) });
    let start = 0;
    return n.inputs.map((x) => {
      const part = e("slice", [dy!], { dim, start, length: x.shape[dim] })[0];
      start += x.shape[dim];
      return part;
    });
  },

  // A rotation is orthogonal: its gradient is the inverse rotation of dy.
  rope(b, n, [dy]) {
    return [emitter(b, n)("rope", [dy!], { base: n.attrs.base, inverse: n.attrs.inverse !== true })[0]];
  },

  silu(b, n, [dy]) {
    return [emitter(b, n)("silu_bwd", [n.inputs[0], dy!])[0]];
  },

  // Tensor parallelism, as Megatron's f and g operators: the gradient of a value every rank holds whole
  // is whole and the same on every rank; that of a split value is this rank's part of the gradient.
  tp_copy(b, n, [dy]) {
    return [emitter(b, n)("all_reduce", [dy!], { reduce: "sum" })[0]];
  },

  all_reduce(_b, n, [dy]) {
    if (n.attrs.reduce !== "sum") throw new Error("internal: only a sum all_reduce has a gradient");
    return [dy];
  },

  all_gather(b, n, [dy]) {
    return [emitter(b, n)("shard_slice", [dy!], { ranks: n.attrs.ranks })[0]];
  },

  reduce_scatter(b, n, [dy]) {
    return [emitter(b, n)("all_gather", [dy!], { ranks: n.attrs.ranks })[0]];
  },

  shard_slice(b, n, [dy]) {
    return [emitter(b, n)("all_gather", [dy!], { ranks: n.attrs.ranks })[0]];
  },

  embedding_vp(b, n, [dy], wants) {
    const [table, idx] = n.inputs;
    return [wants[0] ? emitter(b, n)("embedding_vp_bwd", [idx, dy!], { V: table.shape[0] })[0] : undefined, undefined];
  },

  // The whole gradient of the loss with respect to the logits (softmax minus one-hot); the row max
  // and sums are statistics of the logits, so no gradient flows through them.
  cross_entropy_vp(b, n, [dloss], wants) {
    const [logits, targets, max, sums] = n.inputs;
    const dlogits = wants[0]
      ? emitter(b, n)("cross_entropy_vp_bwd", [logits, targets, max, sums, dloss!], { vocab: n.attrs.vocab })[0]
      : undefined;
    return [dlogits, undefined, undefined, undefined];
  },

  param: NONE,
  // Fusion runs after autodiff: a fused node is never differentiated.
  fused: NONE,
  sum_rows: NONE,
  opt_state: NONE,
  input: NONE,
  iota: NONE,
  fill: NONE,
  embedding_bwd: NONE,
  embedding_bwd_acc: NONE,
  layernorm_bwd: NONE,
  gelu_bwd: NONE,
  unary_bwd: NONE,
  binary_bwd: NONE,
  reduce_bwd: NONE,
  attention_bwd: NONE,
  cross_entropy_bwd: NONE,
  linear_cross_entropy_bwd: NONE,
  grad_norm: NONE,
  chunk_h2d: NONE,
  chunk_view: NONE,
  copy_d2h: NONE,
  wait: NONE,
  adamw: NONE,
  silu_bwd: NONE,
  broadcast: NONE,
  zero_adamw: NONE,
  zero_gather: NONE,
  zero_param_shard: NONE,
  zero_all_gather: NONE,
  zero_pack: NONE,
  zero_reduce_scatter: NONE,
  embedding_vp_bwd: NONE,
  cross_entropy_vp_max: NONE,
  cross_entropy_vp_sums: NONE,
  cross_entropy_vp_bwd: NONE,
  sum_squares: NONE,
  norm_from_squares: NONE,

  // Data movement along any axis: a slice's gradient pads it back with zeros, a pad's crops it away.
  slice(b, n, [dy]) {
    const { dim, start, length } = n.attrs;
    const D = n.inputs[0].shape[dim];
    const tail = n.inputs[0].shape.length - dim - 1;
    const zeros = new Array<number>(tail).fill(0);
    return [emitter(b, n)("pad", [dy!], { before: [start, ...zeros], after: [D - start - length, ...zeros], value: 0 })[0]];
  },

  pad(b, n, [dy]) {
    const { before, after } = n.attrs;
    return [emitter(b, n)("pad", [dy!], { before: before.map((x) => -x), after: after.map((x) => -x), value: 0 })[0]];
  },

  expand(b, n, [dy]) {
    const x = n.inputs[0];
    if (shapeEq(x.shape, dy!.shape)) return [dy];
    return [emitter(b, n)("expand_bwd", [dy!], { shape: x.shape })[0]];
  },

  // Scatter-adds: an index picked twice gets both gradients; the indices get none.
  index_select(b, n, [dy], wants) {
    const [x, idx] = n.inputs;
    const D = x.shape[n.attrs.dim];
    return [wants[0] ? emitter(b, n)("index_select_bwd", [idx, dy!], { dim: n.attrs.dim, D })[0] : undefined, undefined];
  },

  gather(b, n, [dy], wants) {
    const [x, idx] = n.inputs;
    const D = x.shape[n.attrs.dim];
    return [wants[0] ? emitter(b, n)("gather_bwd", [idx, dy!], { dim: n.attrs.dim, D })[0] : undefined, undefined];
  },

  expand_bwd: NONE,
  index_select_bwd: NONE,
  gather_bwd: NONE,

  // dy goes to a where the condition holds and to b elsewhere, each summed back to its operand's
  // shape; the condition gets none.
  where(b, n, [dy], wants) {
    const [cond, A, B] = n.inputs;
    const out = n.outputs[0];
    const e = emitter(b, n);
    const zero = () => e("fill", [], { shape: [], value: 0 })[0];
    const dA = wants[1] ? sumToOperand(b, n, e("where", [cond, dy!, zero()])[0], out, A) : undefined;
    const dB = wants[2] ? sumToOperand(b, n, e("where", [cond, zero(), dy!])[0], out, B) : undefined;
    return [undefined, dA, dB];
  },
};
