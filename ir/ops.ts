// The op registry: for each op, how its output types follow from its inputs and attributes, how much
// scratch memory its kernel asks for, which outputs reuse an input's storage, how it runs (its kind)
// and the FLOPs its kernel performs. This table is the contract between the planner (TypeScript) and
// the kernels (runtime/): the workspace sizes here are exactly what the kernels request. It is typed
// over OpName (ir/op_attrs.ts), as are the other per-op tables, each in its own layer: the gradient
// rules (ir/grad_rules.ts), the reference semantics (ir/interpret.ts) and each backend's kernel
// bindings (codegen/). An op missing from any of them is a compile error.
import type { AttrsOf, BinaryFn, LmHeadAttrs, OpName, UnaryFn } from "./op_attrs.ts";
import { MOVE_RANK, broadcastLayout, padAmounts, padLayout } from "./movement.ts";
import { maskLayout } from "./attention_mask.ts";
import { type FusableOp, type FusedProgram, FusedProgramError, readProgram } from "./fused_program.ts";
import { type DType, type NodeOf, type Shape, type Value, numel, shapeEq, formatShape } from "./types.ts";

export type { OpName } from "./op_attrs.ts";

export class ShapeError extends Error {}

export interface OutType {
  shape: Shape;
  dtype: DType;
}

/**
 * How a node of an op runs:
 * - source: no work; a value the runtime provides (parameters, optimizer state, inputs);
 * - view: no work; the output is an input's storage seen differently;
 * - compute: a kernel on the device (or on the host, for a hostable op placed there);
 * - collective: a kernel that exchanges data with the other ranks;
 * - transfer: starts an asynchronous host-device copy on the transfer engine and gives a ticket;
 * - wait: blocks until the copy that made its first input is done.
 */
export type OpKind = "source" | "view" | "compute" | "collective" | "transfer" | "wait";

export interface OpDef<K extends OpName = OpName> {
  kind: OpKind;
  /** Output types, or a ShapeError explaining why the inputs do not fit. */
  infer(inputs: readonly Value[], attrs: AttrsOf<K>): OutType[];
  /** Bytes of scratch memory the kernel requests (0 for most ops). */
  workspace?(inputs: readonly Value[], attrs: AttrsOf<K>, threads: number): number;
  /** Output index -> input index whose storage the output always shares (in-place update or view). */
  aliases?: Readonly<Record<number, number>>;
  /**
   * Output index -> input index the kernel may overwrite: the planner gives the output that input's
   * storage when the input dies at this node (the kernel reads each element before writing it).
   */
  reuses?: Readonly<Record<number, number>> | ((inputs: readonly Value[], attrs: AttrsOf<K>) => Readonly<Record<number, number>>);
  /** Number of inputs, or "variadic". */
  arity: number | "variadic" | readonly number[];
  /**
   * Floating-point operations of a node, as its CPU kernel performs them (0 when absent). Products
   * count 2 per multiply-add; elementwise work a few operations per element of the first input.
   */
  flops?(n: NodeOf<K>): number;
  /** Runs on the host when the model data it reads lives in host memory (the optimizer under offload). */
  hostable?: true;
}

function fail(msg: string): never {
  throw new ShapeError(msg);
}

function f32(shape: Shape): OutType {
  return { shape, dtype: "f32" };
}

function expectF32(op: string, v: Value, what: string): void {
  if (v.dtype !== "f32") fail(`${op}: ${what} must be f32, got ${v.dtype}`);
}

/** Whether `suffix` is a trailing part of `of` (the broadcasting add and mul allow). */
export function isSuffix(suffix: Shape, of: Shape): boolean {
  if (suffix.length > of.length) return false;
  const off = of.length - suffix.length;
  return suffix.every((d, i) => d === of[off + i]);
}

function broadcastBinary(op: string) {
  return (inputs: readonly Value[]): OutType[] => {
    const [a, b] = inputs;
    expectF32(op, a, "left operand");
    expectF32(op, b, "right operand");
    if (!isSuffix(b.shape, a.shape))
      fail(
        `${op}: shapes ${formatShape(a.shape)} and ${formatShape(b.shape)} do not match ` +
          `(the right operand must have the left's shape or a trailing part of it)`,
      );
    return [f32(a.shape)];
  };
}

/**
 * How `binary`'s b broadcasts against a: b[(i / inner) % nb] pairs with a[i]. b's shape is a trailing
 * part of a's (inner 1), or that followed by k axes of 1 standing for a's last k axes (inner their
 * product): [..., 1] from a keepdim reduction against [..., C]. Undefined when b does not fit.
 */
export function binaryBroadcast(a: Shape, b: Shape): { inner: number; nb: number } | undefined {
  let ones = 0;
  while (ones < b.length && b[b.length - 1 - ones] === 1) ones++;
  for (let k = 0; k <= ones && k <= a.length; k++)
    if (isSuffix(b.slice(0, b.length - k), a.slice(0, a.length - k))) return { inner: numel(a.slice(a.length - k)), nb: numel(b) };
  return undefined;
}

function lastDim(s: Shape): number {
  return s[s.length - 1];
}

/** Leading dims flattened: [..., T, D] -> BH = prod(...), T, D. */
export function attentionDims(q: Shape): { BH: number; T: number; D: number } {
  const T = q[q.length - 2];
  const D = q[q.length - 1];
  return { BH: numel(q) / (T * D), T, D };
}

/** The key (and value) length Tk of k [..., Tk, D]: q's T unless it is cross-attention. */
export function attentionKeys(k: Shape): number {
  return k[k.length - 2];
}

/**
 * k (and v) may have fewer heads than q (grouped or multi-query attention): every axis but the heads
 * axis (-3) and the length (-2) equal, and k's head count dividing q's. Query head h then reads KV head
 * h / group. The lengths may differ (cross-attention).
 */
function kvHeadsFit(q: Shape, k: Shape): boolean {
  const r = q.length;
  if (k.length !== r || !shapeEq(q.slice(0, r - 3), k.slice(0, r - 3)) || q[r - 1] !== k[r - 1]) return false;
  return k[r - 3] > 0 && q[r - 3] % k[r - 3] === 0;
}

/** Query heads per KV head: 1 for ordinary attention, the query head count for multi-query. */
export function attentionGroup(q: Shape, k: Shape): number {
  return attentionDims(q).BH / attentionDims(k).BH;
}

/** Whether an attention node masks the future: causal unless its `causal` attribute is false. */
export function isCausal(attrs: { readonly causal?: boolean }): boolean {
  return attrs.causal !== false;
}

/** Types of attention's outputs (y, lse), or a ShapeError naming what does not fit. */
function attentionInfer(inputs: readonly Value[]): OutType[] {
  const [q, k, v, mask] = inputs;
  for (const [x, what] of [
    [q, "q"],
    [k, "k"],
    [v, "v"],
  ] as const)
    expectF32("attention", x, what);
  if (q.shape.length < 3) fail(`attention: q must be [..., T, D], got ${formatShape(q.shape)}`);
  if (!shapeEq(k.shape, v.shape) || !kvHeadsFit(q.shape, k.shape))
    fail(
      `attention: q ${formatShape(q.shape)}, k ${formatShape(k.shape)} and v ${formatShape(v.shape)} must match, ` +
        `except that k and v may have fewer heads (axis -3) than q, a number that divides q's, and another length (axis -2)`,
    );
  const Tq = attentionDims(q.shape).T;
  const Tk = attentionKeys(k.shape);
  if (Tk === 0 && Tq > 0) fail(`attention: k and v have no positions, so the queries have nothing to attend to`);
  if (mask) {
    expectF32("attention", mask, "mask");
    const layout = maskLayout(q.shape, Tk, mask.shape);
    if (typeof layout === "string") fail(`attention: ${layout}`);
  }
  return [f32(q.shape), f32(q.shape.slice(0, -1))];
}

/**
 * The LM head fused with the loss: x [N, C] times W (stored [V, C] with tb, else [C, V]) gives logits
 * [N, V], which the kernels compute in tiles of `rows` x `cols` (attributes chosen by the fuse pass).
 */
export interface LmHeadDims {
  N: number;
  C: number;
  V: number;
  tb: boolean;
  rows: number;
  cols: number;
}

/** Bytes of the forward kernel's workspace for a tile: its logits and two floats a row (the backward's is the logits). */
export function lmHeadWorkspace(t: { rows: number; cols: number }): number {
  return (t.rows * t.cols + 2 * t.rows) * 4;
}

export function lmHeadDims(inputs: readonly Value[], attrs: LmHeadAttrs): LmHeadDims {
  const [x, w] = inputs;
  const tb = attrs.tb === true;
  return { N: x.shape[0], C: x.shape[1], V: w.shape[tb ? 0 : 1], tb, rows: attrs.rows, cols: attrs.cols };
}

/** The fused LM head's work: its products (over tiles of `tileFlops` each) and the softmax over its logits. */
export interface LmHeadWork {
  productFlops: number;
  /** FLOPs of one tile's product: the size each sgemm call runs at. */
  tileFlops: number;
  logits: number;
  flopsPerLogit: number;
}

/** The forward's product and softmax; the backward recomputes the product, then dx and dW. */
export function lmHeadWork(inputs: readonly Value[], attrs: LmHeadAttrs, forward: boolean): LmHeadWork {
  const { N, C, V, rows, cols } = lmHeadDims(inputs, attrs);
  return { productFlops: (forward ? 1 : 3) * 2 * N * V * C, tileFlops: 2 * rows * cols * C, logits: N * V, flopsPerLogit: forward ? 4 : 5 };
}

function lmHeadFlops(w: LmHeadWork): number {
  return w.productFlops + w.flopsPerLogit * w.logits;
}

function attentionProductFlops(q: Shape, k: Shape, products: number): number {
  const { BH, T, D } = attentionDims(q);
  return products * 2 * BH * T * attentionKeys(k) * D;
}

function linearCrossEntropyInfer(inputs: readonly Value[], attrs: LmHeadAttrs): OutType[] {
  const [x, w, targets] = inputs;
  const op = "linear_cross_entropy";
  expectF32(op, x, "input");
  expectF32(op, w, "weight");
  if (x.shape.length !== 2 || w.shape.length !== 2)
    fail(`${op}: input ${formatShape(x.shape)} and weight ${formatShape(w.shape)} must be 2-D`);
  const { N, C, V, tb, rows, cols } = lmHeadDims(inputs, attrs);
  if (w.shape[tb ? 1 : 0] !== C) fail(`${op}: input ${formatShape(x.shape)} does not match weight ${formatShape(w.shape)}${tb ? "ᵀ" : ""}`);
  if (targets.dtype !== "i32" || !shapeEq(targets.shape, [N]))
    fail(`${op}: targets must be i32 [${N}], got ${targets.dtype} ${formatShape(targets.shape)}`);
  const tile = (n: number, most: number) => Number.isInteger(n) && n >= 1 && n <= Math.max(1, most);
  if (!tile(rows, N) || !tile(cols, V)) fail(`${op}: tile ${rows} x ${cols} does not fit logits [${N},${V}]`);
  return [f32([]), f32([N])];
}

function matmulInfer(inputs: readonly Value[], attrs: AttrsOf<"matmul">): OutType[] {
  const [a, b] = inputs;
  expectF32("matmul", a, "left operand");
  expectF32("matmul", b, "right operand");
  const ta = attrs.ta === true;
  const tb = attrs.tb === true;
  if (a.shape.length < 2 || b.shape.length < 2) fail("matmul: operands must have rank 2 or more");
  if (b.shape.length !== 2 && b.shape.length !== a.shape.length)
    fail(`matmul: right operand of shape ${formatShape(b.shape)} must be 2-D or have the left's rank`);
  const ar = a.shape.length;
  const br = b.shape.length;
  const batchA = a.shape.slice(0, ar - 2);
  if (br === ar && !shapeEq(batchA, b.shape.slice(0, br - 2)))
    fail(`matmul: batch dimensions differ: ${formatShape(a.shape)} and ${formatShape(b.shape)}`);
  if (br === 2 && ar > 2) fail("matmul: a 2-D right operand needs a 2-D left operand (reshape first)");
  const M = ta ? a.shape[ar - 1] : a.shape[ar - 2];
  const Ka = ta ? a.shape[ar - 2] : a.shape[ar - 1];
  const Kb = tb ? b.shape[br - 1] : b.shape[br - 2];
  const N = tb ? b.shape[br - 2] : b.shape[br - 1];
  if (Ka !== Kb)
    fail(
      `matmul: inner dimensions differ: ${formatShape(a.shape)}${ta ? "ᵀ" : ""} @ ` +
        `${formatShape(b.shape)}${tb ? "ᵀ" : ""} (${Ka} vs ${Kb})`,
    );
  return [f32([...batchA, M, N])];
}

function permuted(shape: Shape, perm: readonly number[]): number[] {
  return perm.map((p) => shape[p]);
}

function checkPerm(perm: readonly number[], rank: number): void {
  const seen = new Set(perm);
  if (perm.length !== rank || seen.size !== rank || perm.some((p) => p < 0 || p >= rank || !Number.isInteger(p)))
    fail(`transpose: [${perm.join(",")}] is not a permutation of ${rank} axes`);
}

function perElement(flops: number) {
  return (n: { readonly inputs: readonly Value[] }) => flops * numel(n.inputs[0].shape);
}

/** FLOPs per element of each function, as the kernels compute it (exp and its kin a polynomial's worth). */
function unaryFlops(fn: UnaryFn): number {
  return { neg: 1, exp: 12, log: 20, sqrt: 4, rsqrt: 5, tanh: 15, sigmoid: 14, abs: 1, relu: 1, square: 1, reciprocal: 1, pow: 25 }[fn];
}

function binaryFlops(fn: BinaryFn): number {
  return { add: 1, sub: 1, mul: 1, div: 1, pow: 25, maximum: 1, minimum: 1, eq: 1, ne: 1, lt: 1, le: 1, gt: 1, ge: 1 }[fn];
}

export const OPS: { readonly [K in OpName]: OpDef<K> } = {
  param: { kind: "source", arity: 0, infer: (_i, a) => [f32(a.shape)] },
  opt_state: { kind: "source", arity: 0, infer: (_i, a) => [f32(a.shape)] },
  input: { kind: "source", arity: 0, infer: (_i, a) => [{ shape: a.shape, dtype: a.dtype }] },
  iota: { kind: "compute", arity: 0, infer: (_i, a) => [{ shape: [a.n], dtype: "i32" }] },
  fill: { kind: "compute", arity: 0, infer: (_i, a) => [f32(a.shape)] },

  embedding: {
    kind: "compute",
    arity: 2,
    infer: ([table, idx]) => {
      expectF32("embedding", table, "table");
      if (table.shape.length !== 2) fail(`embedding: table must be 2-D, got ${formatShape(table.shape)}`);
      if (idx.dtype !== "i32") fail("embedding: indices must be i32");
      return [f32([...idx.shape, table.shape[1]])];
    },
  },
  embedding_bwd: { kind: "compute", flops: perElement(1), arity: 2, infer: ([, dy], a) => [f32([a.V, lastDim(dy.shape)])] },
  // acc + embedding_bwd(idx, dy), computed as that sum is (each row's positions summed in order, then
  // added to acc's row), without a (V, C) temporary: the gradient of a tied embedding
  // (ir/passes/embedding_grad.ts). Workspace: a counting sort of the positions by row, and one row sum
  // per thread.
  embedding_bwd_acc: {
    kind: "compute",
    arity: 3,
    reuses: { 0: 0 },
    infer: ([acc, idx, dy]) => {
      if (acc.shape.length !== 2 || lastDim(acc.shape) !== lastDim(dy.shape) || idx.dtype !== "i32")
        fail(`embedding_bwd_acc: ${formatShape(acc.shape)} cannot take rows of ${formatShape(dy.shape)}`);
      return [f32(acc.shape)];
    },
    workspace: ([acc, idx, dy], _a, threads) => (acc.shape[0] + 1 + numel(idx.shape)) * 4 + threads * lastDim(dy.shape) * 4,
  },
  matmul: {
    kind: "compute",
    arity: 2,
    infer: matmulInfer,
    flops: ({ inputs: [a], outputs: [y], attrs }) => 2 * numel(y.shape) * a.shape[a.shape.length - (attrs.ta === true ? 2 : 1)],
  },
  add: { kind: "compute", flops: perElement(1), arity: 2, reuses: { 0: 0 }, infer: broadcastBinary("add") },
  mul: { kind: "compute", flops: perElement(1), arity: 2, reuses: { 0: 0 }, infer: broadcastBinary("mul") },
  scale: { kind: "compute", flops: perElement(1), arity: 1, reuses: { 0: 0 }, infer: ([a]) => [f32(a.shape)] },
  sum_rows: {
    kind: "compute",
    flops: perElement(1),
    arity: 1,
    infer: ([x], a) => {
      const to = a.to;
      if (!isSuffix(to, x.shape)) fail(`sum_rows: ${formatShape(to)} is not a trailing part of ${formatShape(x.shape)}`);
      return [f32(to)];
    },
  },
  layernorm: {
    kind: "compute",
    flops: perElement(8),
    arity: [2, 3],
    infer: ([x, w, b]) => {
      expectF32("layernorm", x, "input");
      const C = lastDim(x.shape);
      if (!shapeEq(w.shape, [C]) || (b && !shapeEq(b.shape, [C])))
        fail(`layernorm: weight ${formatShape(w.shape)}${b ? ` and bias ${formatShape(b.shape)}` : ""} must be [${C}]`);
      return [f32(x.shape)];
    },
  },
  // Attribute bias=false: the forward had no bias, so there is no db output.
  layernorm_bwd: {
    kind: "compute",
    flops: perElement(16),
    arity: 3,
    infer: ([x, w], a) => (a.bias === false ? [f32(x.shape), f32(w.shape)] : [f32(x.shape), f32(w.shape), f32(w.shape)]),
    workspace: ([x]) => (numel(x.shape) / lastDim(x.shape)) * 2 * 4,
  },
  // Elementwise math and last-axis reductions (the DSL's x.exp(), x.sub(y), x.sum(-1, true), ...).
  unary: {
    kind: "compute",
    flops: (n) => unaryFlops(n.attrs.fn) * numel(n.inputs[0].shape),
    arity: 1,
    reuses: { 0: 0 },
    infer: ([x], a) => (expectF32(`unary ${a.fn}`, x, "input"), [f32(x.shape)]),
  },
  unary_bwd: {
    kind: "compute",
    flops: (n) => (unaryFlops(n.attrs.fn) + 2) * numel(n.inputs[0].shape),
    arity: 2,
    reuses: { 0: 1 },
    infer: ([x]) => [f32(x.shape)],
  },
  binary: {
    kind: "compute",
    flops: (n) => binaryFlops(n.attrs.fn) * numel(n.inputs[0].shape),
    arity: 2,
    reuses: { 0: 0 },
    infer: ([a, b], at) => {
      expectF32(at.fn, a, "left operand");
      expectF32(at.fn, b, "right operand");
      if (!binaryBroadcast(a.shape, b.shape))
        fail(
          `${at.fn}: shapes ${formatShape(a.shape)} and ${formatShape(b.shape)} do not match (the right operand must have ` +
            `the left's shape or a trailing part of it, or the left's shape with its last axes 1, as a keepdim reduction gives)`,
        );
      return [f32(a.shape)];
    },
  },
  binary_bwd: {
    kind: "compute",
    flops: (n) => (binaryFlops(n.attrs.fn) + 2) * numel(n.inputs[0].shape),
    arity: 3,
    reuses: { 0: 2 },
    infer: ([a]) => [f32(a.shape)],
  },
  reduce: {
    kind: "compute",
    flops: perElement(1),
    arity: 1,
    infer: ([x], a) => {
      expectF32(`reduce ${a.fn}`, x, "input");
      if (x.shape.length === 0) fail(`reduce ${a.fn}: the input must have an axis to reduce, got a scalar`);
      return [f32([...x.shape.slice(0, -1), 1])];
    },
  },
  reduce_bwd: {
    kind: "compute",
    flops: (n) => 2 * numel(n.outputs[0].shape),
    arity: [1, 3],
    reuses: (inputs): Record<number, number> => (inputs.length === 3 ? { 0: 0 } : {}),
    infer: (inputs, a) => {
      if (inputs.length === 3) return [f32(inputs[0].shape)];
      if (a.fn === "max" || a.C === undefined) fail("reduce_bwd: max takes x, y and dy; sum and mean dy and the attribute C");
      return [f32([...inputs[0].shape.slice(0, -1), a.C])];
    },
  },
  gelu: { kind: "compute", flops: perElement(20), arity: 1, infer: ([x]) => (expectF32("gelu", x, "input"), [f32(x.shape)]) },
  gelu_bwd: { kind: "compute", flops: perElement(30), arity: 2, reuses: { 0: 1 }, infer: ([x]) => [f32(x.shape)] },
  // The kernels run full Tq x Tk products: two in the forward, five in the backward.
  attention: {
    kind: "compute",
    flops: (n) => attentionProductFlops(n.inputs[0].shape, n.inputs[1].shape, 2),
    arity: [3, 4],
    infer: attentionInfer,
    workspace: ([q, k]) => attentionDims(q.shape).T * attentionKeys(k.shape) * 4,
  },
  attention_bwd: {
    kind: "compute",
    flops: (n) => attentionProductFlops(n.inputs[0].shape, n.inputs[1].shape, 5),
    arity: [6, 7],
    infer: ([q, k, v, , , , mask], a) => {
      if (a.maskGrad && !mask) fail("attention_bwd: maskGrad needs the mask");
      return [f32(q.shape), f32(k.shape), f32(v.shape), ...(a.maskGrad ? [f32(mask.shape)] : [])];
    },
    workspace: ([q, k]) => 2 * attentionDims(q.shape).T * attentionKeys(k.shape) * 4,
  },
  // A hash (four 32-bit mixes) and a multiply per element.
  dropout: {
    kind: "compute",
    flops: perElement(16),
    arity: 1,
    reuses: { 0: 0 },
    infer: ([x], a) => {
      expectF32("dropout", x, "input");
      if (!(a.p >= 0 && a.p < 1)) fail(`dropout: the probability p must be in [0, 1), got ${a.p}`);
      if (!Number.isInteger(a.seed) || a.seed < 0 || a.seed > 0xffffffff) fail(`dropout: seed ${a.seed} is not a 32-bit unsigned integer`);
      return [f32(x.shape)];
    },
  },
  cross_entropy: {
    kind: "compute",
    flops: perElement(4),
    arity: 2,
    infer: ([logits, targets]) => {
      expectF32("cross_entropy", logits, "logits");
      if (targets.dtype !== "i32") fail("cross_entropy: targets must be i32");
      if (!shapeEq(logits.shape.slice(0, -1), targets.shape))
        fail(`cross_entropy: logits ${formatShape(logits.shape)} do not match targets ${formatShape(targets.shape)}`);
      return [f32([])];
    },
  },
  cross_entropy_bwd: { kind: "compute", flops: perElement(5), arity: 3, reuses: { 0: 0 }, infer: ([logits]) => [f32(logits.shape)] },
  // Logits and their gradient exist only one tile at a time (kernels_lm_head.cpp). The forward keeps
  // a running sum and the target's logit per row of a tile next to it; the row max lives in lse.
  linear_cross_entropy: {
    kind: "compute",
    flops: (n) => lmHeadFlops(lmHeadWork(n.inputs, n.attrs, true)),
    arity: 3,
    infer: linearCrossEntropyInfer,
    workspace: (inputs, attrs) => lmHeadWorkspace(lmHeadDims(inputs, attrs)),
  },
  linear_cross_entropy_bwd: {
    kind: "compute",
    flops: (n) => lmHeadFlops(lmHeadWork(n.inputs, n.attrs, false)),
    arity: 5,
    // With all rows in one tile, each slice of W is read for the last time before its slice of dW is
    // written, so dW may take W's storage (an offloaded W's device copy dies here).
    reuses: (inputs, attrs): Record<number, number> => {
      const { rows, N } = lmHeadDims(inputs, attrs);
      return rows >= N ? { 1: 1 } : {};
    },
    infer: ([x, w]) => [f32(x.shape), f32(w.shape)],
    workspace: (inputs, attrs) => {
      const { rows, cols } = lmHeadDims(inputs, attrs);
      return rows * cols * 4;
    },
  },
  reshape: {
    kind: "view",
    arity: 1,
    aliases: { 0: 0 },
    infer: ([x], a) => {
      const shape = a.shape;
      if (numel(shape) !== numel(x.shape))
        fail(`reshape: cannot reshape ${formatShape(x.shape)} (${numel(x.shape)} elements) to ${formatShape(shape)}`);
      return [{ shape, dtype: x.dtype }];
    },
  },
  transpose: {
    kind: "compute",
    arity: 1,
    infer: ([x], a) => {
      const perm = a.perm;
      checkPerm(perm, x.shape.length);
      return [{ shape: permuted(x.shape, perm), dtype: x.dtype }];
    },
  },
  split: {
    kind: "compute",
    arity: 1,
    infer: ([x], a) => {
      const sizes = a.sizes;
      const total = sizes.reduce((s, d) => s + d, 0);
      if (total !== lastDim(x.shape))
        fail(`split: sizes [${sizes.join(",")}] do not add up to the last dimension of ${formatShape(x.shape)}`);
      return sizes.map((d) => ({ shape: [...x.shape.slice(0, -1), d], dtype: x.dtype }));
    },
  },
  concat: {
    kind: "compute",
    arity: "variadic",
    infer: (xs, a) => {
      const rank = xs[0].shape.length;
      const axis = a.axis ?? rank - 1;
      if (!Number.isInteger(axis) || axis < 0 || axis >= rank) fail(`concat: axis ${axis} is out of range for rank ${rank}`);
      const around = (s: Shape) => [...s.slice(0, axis), ...s.slice(axis + 1)];
      const dtype = xs[0].dtype;
      for (const x of xs)
        if (x.shape.length !== rank || !shapeEq(around(x.shape), around(xs[0].shape)))
          fail(`concat: shapes ${xs.map((v) => formatShape(v.shape)).join(", ")} differ outside axis ${axis}`);
      const other = xs.find((x) => x.dtype !== dtype);
      if (other) fail(`concat: the inputs must have one dtype, got ${dtype} and ${other.dtype}`);
      const shape = [...xs[0].shape];
      shape[axis] = xs.reduce((s, x) => s + x.shape[axis], 0);
      return [{ shape, dtype }];
    },
  },
  grad_norm: { kind: "compute", flops: perElement(2), hostable: true, arity: "variadic", infer: () => [f32([])] },
  // Offloaded model data (ir/passes/offload.ts). Copies run asynchronously on the transfer engine; a
  // `wait` on a copy's result (later inputs only keep storage alive until the copy is done) is where
  // compute may first use it. chunk_h2d brings one chunk's parameters (its inputs, contiguous on the
  // host) into one device buffer; chunk_view is a parameter inside it, `offset` bytes in.
  chunk_h2d: { kind: "transfer", arity: "variadic", infer: (_i, a) => [f32([a.elements])] },
  chunk_view: {
    kind: "view",
    arity: 1,
    aliases: { 0: 0 },
    infer: ([chunk], a) => {
      const shape = a.shape;
      if (a.offset + numel(shape) * 4 > numel(chunk.shape) * 4) fail("chunk_view: the view reaches past its chunk");
      // Of a chunk of model data, or of rows of a step's inputs (ir/passes/grad_accum.ts).
      return [{ shape, dtype: chunk.dtype }];
    },
  },
  copy_d2h: { kind: "transfer", arity: 1, infer: ([x]) => [f32(x.shape)] },
  wait: { kind: "wait", arity: "variadic", aliases: { 0: 0 }, infer: ([x]) => [{ shape: x.shape, dtype: x.dtype }] },
  adamw: {
    kind: "compute",
    flops: perElement(12),
    hostable: true,
    arity: [4, 5],
    aliases: { 0: 0, 1: 2, 2: 3 },
    infer: ([p, g, m, v]) => {
      if (!shapeEq(p.shape, g.shape) || !shapeEq(p.shape, m.shape) || !shapeEq(p.shape, v.shape))
        fail("adamw: parameter, gradient and moments must have one shape");
      return [f32(p.shape), f32(m.shape), f32(v.shape)];
    },
  },
  // Rotary position embeddings (rotate-half pairing) on [..., T, D]; inverse=true rotates back, which
  // is the gradient. Workspace: the cos and sin tables, T * D/2 floats each.
  rope: {
    kind: "compute",
    flops: perElement(3),
    arity: 1,
    reuses: { 0: 0 },
    infer: ([x], a) => {
      expectF32("rope", x, "input");
      if (x.shape.length < 2 || lastDim(x.shape) % 2 !== 0)
        fail(`rope: input must be [..., T, D] with an even D, got ${formatShape(x.shape)}`);
      if (!(typeof a.base === "number" && a.base > 1)) fail(`rope: base must be a number above 1, got ${String(a.base)}`);
      return [f32(x.shape)];
    },
    workspace: ([x]) => x.shape[x.shape.length - 2] * lastDim(x.shape) * 4,
  },
  silu: { kind: "compute", flops: perElement(10), arity: 1, infer: ([x]) => (expectF32("silu", x, "input"), [f32(x.shape)]) },
  silu_bwd: { kind: "compute", flops: perElement(15), arity: 2, reuses: { 0: 1 }, infer: ([x]) => [f32(x.shape)] },

  // Tensor parallelism (ir/passes/shard.ts). Every rank runs the same graph on its part of the
  // tensors; `ranks` is the TP degree. The collectives run across the ranks, in place where they can.
  all_reduce: {
    kind: "collective",
    arity: 1,
    reuses: { 0: 0 },
    infer: ([x], a) => {
      expectF32("all_reduce", x, "input");
      if (a.reduce !== "sum" && a.reduce !== "max" && a.reduce !== "mean") fail(`all_reduce: reduce must be "sum", "max" or "mean"`);
      if (a.group !== undefined && a.group !== "dp") fail(`all_reduce: group must be "dp" or absent (tensor-parallel)`);
      return [f32(x.shape)];
    },
  },
  // ZeRO over the data-parallel ranks (ir/passes/adamw.ts): the chunk's parameters are contiguous in
  // the persistent region, `ranks` shards of `shard` floats; the update writes this rank's shard of them
  // and its moments, and zero_gather brings every rank's shard to every rank, in place. The outputs are
  // the moments and the first parameter, as views: the chunk is model data, never a temporary.
  zero_adamw: {
    kind: "compute",
    flops: (n) => 12 * numel(n.inputs[0].shape),
    // At ZeRO 3 with offloaded model data, on the host shard (ir/passes/offload.ts).
    hostable: true,
    arity: "variadic",
    aliases: { 0: 0, 1: 1 },
    infer: (inputs, a) => {
      const [m, v] = inputs;
      if (!shapeEq(m.shape, [a.shard]) || !shapeEq(v.shape, [a.shard])) fail("zero_adamw: the moments must be one shard");
      if (inputs.length !== 2 + (a.clip ? 1 : 0) + (a.paramShard ? 1 : a.count) + (a.gradShard ? 1 : a.count))
        fail("zero_adamw: expected the moments, the norm if clipped, then parameters and gradients");
      return [f32(m.shape), f32(v.shape)];
    },
  },
  zero_pack: {
    kind: "compute",
    arity: "variadic",
    infer: (grads, a) => {
      if (grads.length !== a.offsets.length) fail("zero_pack: one offset per gradient");
      return [f32([a.ranks * a.shard])];
    },
  },
  zero_reduce_scatter: {
    kind: "collective",
    arity: 1,
    infer: ([x], a) => {
      if (!shapeEq(x.shape, [a.ranks * a.shard])) fail("zero_reduce_scatter: the input must be a packed chunk");
      return [f32([a.shard])];
    },
  },
  zero_gather: {
    kind: "collective",
    arity: "variadic",
    aliases: { 0: 0 },
    infer: ([p]) => [f32(p.shape)],
  },
  // ZeRO 3 (ir/passes/gather_params.ts): a rank keeps only its shard of each chunk's parameters, model
  // data like a parameter; zero_all_gather makes the whole chunk, a temporary that the parameters'
  // readers see through chunk_views and that dies after the last of them.
  zero_param_shard: { kind: "source", arity: 0, infer: (_i, a) => [f32(a.shape)] },
  zero_all_gather: {
    kind: "collective",
    arity: 1,
    infer: ([x], a) => {
      if (!shapeEq(x.shape, [a.shard])) fail("zero_all_gather: the input must be one shard");
      return [f32([a.ranks * a.shard])];
    },
  },
  // Concatenates the ranks' parts along the last axis. The parts arrive rank after rank, so unless the
  // tensor is one row, they are rearranged from a workspace of the output's size.
  all_gather: {
    kind: "collective",
    arity: 1,
    infer: ([x], a) => [f32([...x.shape.slice(0, -1), lastDim(x.shape) * a.ranks])],
    workspace: ([x], a) => (numel(x.shape) === lastDim(x.shape) ? 0 : numel(x.shape) * a.ranks * 4),
  },
  // Sums the ranks' tensors and leaves each rank its part of the last axis; the parts are gathered
  // rank after rank in a workspace of the input's size first (unless the tensor is one row).
  reduce_scatter: {
    kind: "collective",
    arity: 1,
    infer: ([x], a) => {
      const ranks = a.ranks;
      if (lastDim(x.shape) % ranks !== 0) fail(`reduce_scatter: ${ranks} ranks do not divide ${formatShape(x.shape)}`);
      return [f32([...x.shape.slice(0, -1), lastDim(x.shape) / ranks])];
    },
    workspace: ([x]) => (numel(x.shape) === lastDim(x.shape) ? 0 : numel(x.shape) * 4),
  },
  broadcast: { kind: "collective", arity: 1, aliases: { 0: 0 }, infer: ([x]) => [{ shape: x.shape, dtype: x.dtype }] },
  // Megatron's f: the identity in the forward; its gradient is an all_reduce. A view, so no kernel.
  tp_copy: { kind: "view", arity: 1, aliases: { 0: 0 }, infer: ([x]) => [{ shape: x.shape, dtype: x.dtype }] },
  // This rank's part of the last axis (no communication).
  shard_slice: {
    kind: "compute",
    arity: 1,
    infer: ([x], a) => {
      const ranks = a.ranks;
      if (lastDim(x.shape) % ranks !== 0) fail(`shard_slice: ${ranks} ranks do not divide ${formatShape(x.shape)}`);
      return [f32([...x.shape.slice(0, -1), lastDim(x.shape) / ranks])];
    },
  },
  // A vocabulary-parallel embedding: this rank holds rows [rank * V, (rank + 1) * V) of the table and
  // writes zeros for the tokens outside them; an all_reduce sums the ranks' outputs.
  embedding_vp: {
    kind: "compute",
    arity: 2,
    infer: ([table, idx]) => {
      expectF32("embedding_vp", table, "table");
      if (table.shape.length !== 2) fail(`embedding_vp: table must be 2-D, got ${formatShape(table.shape)}`);
      if (idx.dtype !== "i32") fail("embedding_vp: indices must be i32");
      return [f32([...idx.shape, table.shape[1]])];
    },
  },
  embedding_vp_bwd: { kind: "compute", arity: 2, infer: ([, dy], a) => [f32([a.V, lastDim(dy.shape)])] },
  // Vocabulary-parallel cross-entropy over logits whose last axis is this rank's part of the
  // vocabulary (columns at or past `vocab` overall are padding and ignored). Each row's max is
  // all-reduced, then its sum of exponentials and target logit (one [2, rows] tensor); the loss needs
  // only those, so the full logits are never gathered.
  cross_entropy_vp_max: { kind: "compute", arity: 1, infer: ([logits]) => [f32(logits.shape.slice(0, -1))] },
  cross_entropy_vp_sums: { kind: "compute", arity: 3, infer: ([logits]) => [f32([2, ...logits.shape.slice(0, -1)])] },
  cross_entropy_vp: {
    kind: "compute",
    arity: 4,
    infer: ([logits, targets]) => {
      if (targets.dtype !== "i32") fail("cross_entropy_vp: targets must be i32");
      if (!shapeEq(logits.shape.slice(0, -1), targets.shape))
        fail(`cross_entropy_vp: logits ${formatShape(logits.shape)} do not match targets ${formatShape(targets.shape)}`);
      return [f32([])];
    },
  },
  cross_entropy_vp_bwd: { kind: "compute", arity: 5, reuses: { 0: 0 }, infer: ([logits]) => [f32(logits.shape)] },
  // The global gradient norm when some gradients are split across ranks: sums of squares (of the
  // split ones, all-reduced; of the replicated ones, counted once), then the square root of their sum.
  sum_squares: { kind: "compute", arity: "variadic", infer: () => [f32([1])] },
  norm_from_squares: { kind: "compute", arity: "variadic", infer: () => [f32([])] },

  // Data movement along any axis (ir/movement.ts). They move 4-byte words, so they keep the input's
  // dtype; the gradients (expand_bwd, index_select_bwd, gather_bwd) add, so they are f32.
  slice: {
    kind: "compute",
    arity: 1,
    infer: ([x], a) => {
      checkAxis("slice", a.dim, x.shape);
      const D = x.shape[a.dim];
      if (!Number.isInteger(a.start) || !Number.isInteger(a.length) || a.start < 0 || a.length < 1 || a.start + a.length > D)
        fail(`slice: [${a.start}, ${a.start + a.length}) is not a non-empty range inside axis ${a.dim} of ${formatShape(x.shape)}`);
      const shape = [...x.shape];
      shape[a.dim] = a.length;
      return [{ shape, dtype: x.dtype }];
    },
  },
  pad: {
    kind: "compute",
    arity: 1,
    infer: ([x], a) => {
      const k = a.before.length;
      if (a.after.length !== k || k > x.shape.length)
        fail(
          `pad: ${a.before.length} and ${a.after.length} amounts for ${formatShape(x.shape)} (one before and one after each padded axis)`,
        );
      if (![...a.before, ...a.after].every(Number.isInteger)) fail("pad: the amounts must be integers");
      const amounts = padAmounts(x.shape.length, a.before, a.after);
      const shape = x.shape.map((d, i) => d + amounts.before[i] + amounts.after[i]);
      const cut = x.shape.findIndex((d, i) => -amounts.before[i] > d || -amounts.after[i] > d || shape[i] < 1);
      if (cut >= 0)
        fail(`pad: cropping axis ${cut} of ${formatShape(x.shape)} by ${-amounts.before[cut]} and ${-amounts.after[cut]} leaves nothing`);
      if (padLayout(x.shape, a.before, a.after).inShape.length > MOVE_RANK)
        fail(`pad: the padded axes must lie within ${MOVE_RANK - 2} neighbouring axes`);
      if (x.dtype === "i32" && !Number.isInteger(a.value)) fail(`pad: an i32 tensor needs an integer value, got ${a.value}`);
      return [{ shape, dtype: x.dtype }];
    },
  },
  expand: {
    kind: "compute",
    arity: 1,
    infer: ([x], a) => {
      if (!a.shape.every((d) => Number.isInteger(d) && d >= 1)) fail(`expand: sizes ${formatShape(a.shape)} must be positive integers`);
      const layout = broadcastLayout(x.shape, a.shape);
      if (!layout)
        fail(
          `expand: ${formatShape(x.shape)} does not broadcast to ${formatShape(a.shape)} (its axes align with the ` +
            `trailing ones, and each must be equal or 1)`,
        );
      if (layout.big.length > MOVE_RANK) fail(`expand: more than ${MOVE_RANK} alternations of broadcast and kept axes`);
      return [{ shape: a.shape, dtype: x.dtype }];
    },
  },
  // Each element of dx sums its broadcast copies in dy, in index order.
  expand_bwd: {
    kind: "compute",
    flops: perElement(1),
    arity: 1,
    infer: ([dy], a) => {
      const layout = broadcastLayout(a.shape, dy.shape);
      if (!layout || layout.big.length > MOVE_RANK) fail(`expand_bwd: ${formatShape(dy.shape)} does not sum to ${formatShape(a.shape)}`);
      return [f32(a.shape)];
    },
  },
  index_select: {
    kind: "compute",
    arity: 2,
    infer: ([x, idx], a) => {
      checkAxis("index_select", a.dim, x.shape);
      if (idx.dtype !== "i32") fail(`index_select: the indices must be i32, got ${idx.dtype}`);
      return [{ shape: [...x.shape.slice(0, a.dim), ...idx.shape, ...x.shape.slice(a.dim + 1)], dtype: x.dtype }];
    },
  },
  index_select_bwd: {
    kind: "compute",
    flops: (n) => numel(n.inputs[1].shape),
    arity: 2,
    infer: ([idx, dy], a) => {
      const shape = [...dy.shape.slice(0, a.dim), a.D, ...dy.shape.slice(a.dim + idx.shape.length)];
      return [f32(shape)];
    },
  },
  gather: {
    kind: "compute",
    arity: 2,
    infer: ([x, idx], a) => {
      checkAxis("gather", a.dim, x.shape);
      if (idx.dtype !== "i32") fail(`gather: the index must be i32, got ${idx.dtype}`);
      const others = (s: Shape) => [...s.slice(0, a.dim), ...s.slice(a.dim + 1)];
      if (idx.shape.length !== x.shape.length || !shapeEq(others(idx.shape), others(x.shape)) || idx.shape[a.dim] < 1)
        fail(`gather: the index ${formatShape(idx.shape)} must have the shape of x ${formatShape(x.shape)} except along axis ${a.dim}`);
      return [{ shape: idx.shape, dtype: x.dtype }];
    },
  },
  gather_bwd: {
    kind: "compute",
    flops: (n) => numel(n.inputs[1].shape),
    arity: 2,
    infer: ([idx], a) => {
      const shape = [...idx.shape];
      shape[a.dim] = a.D;
      return [f32(shape)];
    },
  },

  where: {
    kind: "compute",
    flops: (n) => numel(n.outputs[0].shape),
    arity: 3,
    infer: ([cond, a, b]) => {
      expectF32("where", cond, "condition (a mask: use a comparison, or 0 and 1)");
      expectF32("where", a, "value where true");
      expectF32("where", b, "value where false");
      const shape = whereShape(cond.shape, a.shape, b.shape);
      if (!shape)
        fail(
          `where: condition ${formatShape(cond.shape)}, ${formatShape(a.shape)} and ${formatShape(b.shape)} do not broadcast ` +
            `(two of them must be trailing parts of the third's shape, or its shape with its last axes 1)`,
        );
      return [f32(shape)];
    },
  },

  // No workspace: the kernel keeps each step's value in a register.
  fused: {
    kind: "compute",
    arity: "variadic",
    flops: fusedFlops,
    reuses: fusedReuses,
    infer: (inputs, a) => {
      const program = fusedProgram(inputs, a);
      return a.outs.map((k) => f32(program.shapes[k]));
    },
  },
};

/**
 * Each fused node's program, by its attributes (which copies of the node share), with the input shapes
 * it was read for: a plan search asks for the programs of the same nodes in every graph it probes (for
 * in-place reuse and step times), and reading them again was a few percent of its time.
 */
const readPrograms = new WeakMap<AttrsOf<"fused">, { shapes: readonly Shape[]; program: FusedProgram }>();

/** A fused node's program over its inputs, checked (a bad one is a ShapeError, as any ill-typed node). */
export function fusedProgram(inputs: readonly Value[], attrs: AttrsOf<"fused">): FusedProgram {
  const known = readPrograms.get(attrs);
  if (known && known.shapes.length === inputs.length && inputs.every((v, k) => v.dtype === "f32" && shapeEq(v.shape, known.shapes[k])))
    return known.program;
  const program = readFusedProgram(inputs, attrs);
  readPrograms.set(attrs, { shapes: inputs.map((v) => v.shape), program });
  return program;
}

function readFusedProgram(inputs: readonly Value[], attrs: AttrsOf<"fused">): FusedProgram {
  try {
    const program = readProgram(
      attrs.program,
      inputs.map((v) => v.shape),
      (op, ins, a) => (opDef(op) as OpDef<FusableOp>).infer(ins, a)[0].shape,
    );
    const bad = attrs.outs.find((k) => !Number.isInteger(k) || k < 0 || k >= program.steps.length);
    if (bad !== undefined) fail(`fused: output ${bad} is not a step of the program`);
    if (inputs.some((v) => v.dtype !== "f32")) fail("fused: every input must be f32");
    return program;
  } catch (e) {
    if (e instanceof FusedProgramError) fail(e.message);
    throw e;
  }
}

/**
 * Output k of a fused node may take the storage of an input of the group's size: each element is
 * read, at its own index, before the kernel writes that index (inputs that broadcast are smaller).
 */
function fusedReuses(inputs: readonly Value[], attrs: AttrsOf<"fused">): Record<number, number> {
  const program = fusedProgram(inputs, attrs);
  const free = inputs.map((v, k) => k).filter((k) => numel(inputs[k].shape) === program.n && inputs.indexOf(inputs[k]) === k);
  const reuses: Record<number, number> = {};
  attrs.outs.forEach((step, out) => {
    const s = program.steps[step];
    if (s.op === "fill" || s.op === "reduce" || free.length === 0) return;
    reuses[out] = free.shift()!;
  });
  return reuses;
}

/** A fused node's FLOPs: its steps', each counted as the op's own kernel counts it. */
function fusedFlops(n: NodeOf<"fused">): number {
  const program = fusedProgram(n.inputs, n.attrs);
  const values = (shapes: readonly Shape[]) =>
    shapes.map((shape) => ({ id: -1, shape, dtype: "f32" as const, index: 0, producer: undefined as never }));
  return program.steps.reduce((sum, s, i) => {
    const ins = values(s.args.map((a) => (a.from === "input" ? n.inputs[a.index].shape : program.shapes[a.index])));
    const def = opDef(s.op) as OpDef<FusableOp>;
    return (
      sum + (def.flops?.({ ...n, op: s.op, attrs: s.attrs, inputs: ins, outputs: values([program.shapes[i]]) } as NodeOf<FusableOp>) ?? 0)
    );
  }, 0);
}

/** where's output shape: the first of a, b and cond that the other two broadcast to (binaryBroadcast). */
export function whereShape(cond: Shape, a: Shape, b: Shape): Shape | undefined {
  return [a, b, cond].find((full) => [cond, a, b].every((x) => binaryBroadcast(full, x) !== undefined));
}

function checkAxis(op: string, dim: number, shape: Shape): void {
  if (!Number.isInteger(dim) || dim < 0 || dim >= shape.length) fail(`${op}: axis ${dim} is out of range for ${formatShape(shape)}`);
}

export function isOpName(op: string): op is OpName {
  return Object.hasOwn(OPS, op);
}

/**
 * The op table as a Map. Looking an op up by a name held in a variable was several times slower in the
 * object of a hundred ops than in a Map, and a plan search does it for every node of every graph it
 * probes, in several passes.
 */
const DEFS: ReadonlyMap<string, OpDef> = new Map(Object.entries(OPS) as [string, OpDef][]);

export function opDef<K extends OpName>(op: K): OpDef<K> {
  const def = DEFS.get(op) as OpDef<K> | undefined;
  if (!def) throw new Error(`unknown op ${op}`);
  return def;
}

export function opKind(op: OpName): OpKind {
  return opDef(op).kind;
}

/** Whether a node of the op does work of its own: views and sources run nothing. */
export function runsKernel(op: OpName): boolean {
  const kind = opDef(op).kind;
  return kind !== "source" && kind !== "view";
}

/** Whether the op occupies the compute stream: copies and waits belong to the transfer engine. */
export function isComputeOp(op: OpName): boolean {
  const kind = opDef(op).kind;
  return kind === "compute" || kind === "collective";
}

export function workspaceBytes<K extends OpName>(op: K, inputs: readonly Value[], attrs: AttrsOf<K>, threads: number): number {
  return opDef(op).workspace?.(inputs, attrs, threads) ?? 0;
}
