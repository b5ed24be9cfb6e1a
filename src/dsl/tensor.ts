// The symbolic tensor handle of the DSL. Methods append IR nodes to the graph being traced; shapes are
// static, so a mismatch is caught at the model line that made it.
import type { BinaryFn, ReduceFn, UnaryFn } from "../../ir/op_attrs.ts";
import { isSuffix } from "../../ir/ops.ts";
import type { Shape, Value } from "../../ir/types.ts";
import { numel } from "../../ir/types.ts";
import { emit, traceErrorHere } from "./trace.ts";

export class Tensor {
  constructor(readonly value: Value) {}

  get shape(): Shape {
    return this.value.shape;
  }
  get rank(): number {
    return this.value.shape.length;
  }
  get dtype(): string {
    return this.value.dtype;
  }

  // Elementwise arithmetic. The right operand is a number, or a tensor whose shape is a trailing part
  // of this one's ([C] against [B, T, C]), or this one's with its last axes 1 (the [B, T, 1] of a
  // keepdim reduction against [B, T, C]).
  add(other: Tensor | number): Tensor {
    if (typeof other !== "number" && !isSuffix(other.shape, this.shape)) return this.binary("add", other);
    return wrap(emit("add", [this.value, operand(other)]));
  }
  mul(other: Tensor | number): Tensor {
    if (typeof other === "number") return this.scale(other);
    if (!isSuffix(other.shape, this.shape)) return this.binary("mul", other);
    return wrap(emit("mul", [this.value, other.value]));
  }
  sub(other: Tensor | number): Tensor {
    return this.binary("sub", other);
  }
  div(other: Tensor | number): Tensor {
    if (typeof other === "number") return this.scale(1 / other);
    return this.binary("div", other);
  }
  /** this ** exponent, elementwise; a number exponent is one op (pow(2) is square). */
  pow(exponent: Tensor | number): Tensor {
    if (typeof exponent === "number") return this.unary("pow", exponent);
    return this.binary("pow", exponent);
  }
  /** Elementwise max (torch.maximum); a tie splits the gradient evenly, as PyTorch. */
  maximum(other: Tensor | number): Tensor {
    return this.binary("maximum", other);
  }
  minimum(other: Tensor | number): Tensor {
    return this.binary("minimum", other);
  }
  neg(): Tensor {
    return this.unary("neg");
  }
  exp(): Tensor {
    return this.unary("exp");
  }
  log(): Tensor {
    return this.unary("log");
  }
  sqrt(): Tensor {
    return this.unary("sqrt");
  }
  rsqrt(): Tensor {
    return this.unary("rsqrt");
  }
  tanh(): Tensor {
    return this.unary("tanh");
  }
  sigmoid(): Tensor {
    return this.unary("sigmoid");
  }
  abs(): Tensor {
    return this.unary("abs");
  }
  relu(): Tensor {
    return this.unary("relu");
  }
  square(): Tensor {
    return this.unary("square");
  }
  reciprocal(): Tensor {
    return this.unary("reciprocal");
  }

  // Reductions over the last axis only (dim -1 or rank - 1): for another axis, transpose it to the
  // end first. keepdim keeps the reduced axis as 1, as in PyTorch.
  sum(dim = -1, keepdim = false): Tensor {
    return this.reduce("sum", dim, keepdim);
  }
  mean(dim = -1, keepdim = false): Tensor {
    return this.reduce("mean", dim, keepdim);
  }
  /** The max over the last axis (torch.amax): its gradient is split evenly among tied maxima. */
  amax(dim = -1, keepdim = false): Tensor {
    return this.reduce("max", dim, keepdim);
  }

  private unary(fn: UnaryFn, p?: number): Tensor {
    return wrap(emit("unary", [this.value], p === undefined ? { fn } : { fn, p }));
  }
  private binary(fn: BinaryFn, other: Tensor | number): Tensor {
    return wrap(emit("binary", [this.value, operand(other)], { fn }));
  }
  private reduce(fn: ReduceFn, dim: number, keepdim: boolean): Tensor {
    const r = this.rank;
    if (axis(dim, r) !== r - 1)
      throw traceErrorHere(`${fn === "max" ? "amax" : fn}: only the last axis reduces (dim -1); transpose axis ${dim} to the end first`);
    const kept = wrap(emit("reduce", [this.value], { fn }));
    return keepdim ? kept : kept.reshape(...this.shape.slice(0, -1));
  }
  /** Multiplies by a constant. */
  scale(s: number): Tensor {
    return wrap(emit("scale", [this.value], { s }));
  }
  /** Matrix product with optional transposes as flags (no copies): op(this) @ op(other). */
  matmul(other: Tensor, opts: { transposeSelf?: boolean; transposeOther?: boolean } = {}): Tensor {
    return wrap(emit("matmul", [this.value, other.value], { ta: !!opts.transposeSelf, tb: !!opts.transposeOther }));
  }
  /** New shape with the same elements; one dimension may be -1 (inferred). */
  reshape(...shape: number[]): Tensor {
    return wrap(emit("reshape", [this.value], { shape: resolveShape(shape, this.shape) }));
  }
  /** Swaps two axes (negative axes count from the end), like torch.transpose. */
  transpose(a: number, b: number): Tensor {
    const r = this.rank;
    const perm = [...Array(r).keys()];
    const [i, j] = [axis(a, r), axis(b, r)];
    [perm[i], perm[j]] = [perm[j], perm[i]];
    return wrap(emit("transpose", [this.value], { perm }));
  }
  /** General axis permutation. */
  permute(...perm: number[]): Tensor {
    return wrap(emit("transpose", [this.value], { perm }));
  }
  /** Splits the last axis into pieces of the given sizes (or `n` equal pieces). */
  split(sizes: number | number[]): Tensor[] {
    const last = this.shape[this.rank - 1];
    const list = typeof sizes === "number" ? splitEven(last, sizes) : sizes;
    return emit("split", [this.value], { sizes: list }).map((v) => new Tensor(v));
  }
  gelu(): Tensor {
    return wrap(emit("gelu", [this.value]));
  }
  silu(): Tensor {
    return wrap(emit("silu", [this.value]));
  }

  // Data movement along any axis (negative axes count from the end), as in PyTorch.
  /** `length` positions of axis `dim` from `start` (torch.narrow; a negative start counts from the end). */
  narrow(dim: number, start: number, length: number): Tensor {
    const d = axis(dim, this.rank);
    const D = this.shape[d];
    const from = start < 0 ? start + D : start;
    if (!Number.isInteger(from) || !Number.isInteger(length) || from < 0 || length < 1 || from + length > D)
      throw traceErrorHere(`narrow: start ${start} and length ${length} do not fit axis ${dim} of [${this.shape.join(",")}]`);
    return wrap(emit("slice", [this.value], { dim: d, start: from, length }));
  }
  /**
   * Positions [start, end) of axis `dim`, as x[..., start:end] in Python: negative bounds count from
   * the end, and bounds past it stop there. `end` defaults to the axis's length.
   */
  slice(dim: number, start: number, end?: number): Tensor {
    const d = axis(dim, this.rank);
    const D = this.shape[d];
    const clamp = (i: number) => Math.min(Math.max(i < 0 ? i + D : i, 0), D);
    const [from, to] = [clamp(start), clamp(end ?? D)];
    if (to <= from) throw traceErrorHere(`slice: [${start}, ${end ?? D}) of axis ${dim} (length ${D}) is empty`);
    return wrap(emit("slice", [this.value], { dim: d, start: from, length: to - from }));
  }
  /** An axis of 1 inserted at `dim` (torch.unsqueeze; -1 appends one). */
  unsqueeze(dim: number): Tensor {
    const d = axis(dim, this.rank + 1);
    return this.reshape(...this.shape.slice(0, d), 1, ...this.shape.slice(d));
  }
  /**
   * This tensor repeated along its axes of 1 to `sizes` (torch.expand): its axes align with the
   * trailing sizes, and -1 keeps an axis as it is. It is a copy here, not a view.
   */
  expand(...sizes: number[]): Tensor {
    const lead = sizes.length - this.rank;
    if (lead < 0) throw traceErrorHere(`expand: ${sizes.length} sizes for a tensor of rank ${this.rank}`);
    const shape = sizes.map((s, i) => {
      if (s !== -1) return s;
      if (i < lead) throw traceErrorHere(`expand: -1 is not allowed for the new leading axis ${i}`);
      return this.shape[i - lead];
    });
    return this.broadcastTo(shape);
  }
  /** This tensor broadcast to `shape` (torch.broadcast_to). */
  broadcastTo(shape: readonly number[]): Tensor {
    if (shape.length === this.rank && shape.every((d, i) => d === this.shape[i])) return this;
    return wrap(emit("expand", [this.value], { shape: [...shape] }));
  }
  /** Slices along `dim` picked by i32 `indices` of any shape (torch.index_select); repeats add gradients. */
  indexSelect(dim: number, indices: Tensor): Tensor {
    return wrap(emit("index_select", [this.value, indices.value], { dim: axis(dim, this.rank) }));
  }
  /** out[i] = this[i with axis `dim` replaced by index[i]] (torch.gather); index is i32, of this shape but along dim. */
  gather(dim: number, index: Tensor): Tensor {
    return wrap(emit("gather", [this.value, index.value], { dim: axis(dim, this.rank) }));
  }

  // Comparisons give a float mask, 1 where the relation holds and 0 elsewhere (PyTorch gives bools);
  // no gradient flows through them. The other operand broadcasts as in sub.
  eq(other: Tensor | number): Tensor {
    return this.binary("eq", other);
  }
  ne(other: Tensor | number): Tensor {
    return this.binary("ne", other);
  }
  lt(other: Tensor | number): Tensor {
    return this.binary("lt", other);
  }
  le(other: Tensor | number): Tensor {
    return this.binary("le", other);
  }
  gt(other: Tensor | number): Tensor {
    return this.binary("gt", other);
  }
  ge(other: Tensor | number): Tensor {
    return this.binary("ge", other);
  }
  /** This where `cond` is nonzero, else `other` (torch.Tensor.where). */
  where(cond: Tensor, other: Tensor | number): Tensor {
    return where(cond, this, other);
  }
  /** `value` where `mask` is nonzero, else this (torch.Tensor.masked_fill), e.g. -Infinity before a softmax. */
  maskedFill(mask: Tensor, value: number): Tensor {
    return where(mask, value, this);
  }
}

/**
 * a where `cond` is nonzero, else b (torch.where, with a float mask such as a comparison gives). The
 * result has the shape of one of the three, and the other two are numbers or broadcast to it as a
 * right operand of sub does. The gradient goes to a and b, never to the condition.
 */
export function where(cond: Tensor, a: Tensor | number, b: Tensor | number): Tensor {
  return wrap(emit("where", [cond.value, operand(a), operand(b)]));
}

/** A number as a scalar constant (shape [], which broadcasts against any shape). */
function operand(x: Tensor | number): Value {
  return typeof x === "number" ? emit("fill", [], { shape: [], value: x })[0] : x.value;
}

function wrap(values: Value[]): Tensor {
  return new Tensor(values[0]);
}

export function axis(a: number, rank: number): number {
  const i = a < 0 ? a + rank : a;
  if (i < 0 || i >= rank) throw traceErrorHere(`axis ${a} is out of range for rank ${rank}`);
  return i;
}

function splitEven(total: number, n: number): number[] {
  if (total % n !== 0) throw traceErrorHere(`cannot split a dimension of ${total} into ${n} equal parts`);
  return Array(n).fill(total / n);
}

function resolveShape(shape: number[], from: Shape): number[] {
  const free = shape.filter((d) => d === -1).length;
  if (free > 1) throw traceErrorHere("reshape: at most one dimension may be -1");
  if (free === 0) return shape;
  const known = shape.filter((d) => d !== -1).reduce((p, d) => p * d, 1);
  const total = numel(from);
  if (known === 0 || total % known !== 0) throw traceErrorHere(`reshape: cannot reshape [${from.join(",")}] to [${shape.join(",")}]`);
  return shape.map((d) => (d === -1 ? total / known : d));
}
