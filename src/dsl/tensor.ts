// The symbolic tensor handle of the DSL. Methods append IR nodes to the graph being traced; shapes are
// static, so a mismatch is caught at the model line that made it.
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

  add(other: Tensor): Tensor {
    return wrap(emit("add", [this.value, other.value]));
  }
  mul(other: Tensor): Tensor {
    return wrap(emit("mul", [this.value, other.value]));
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
}

function wrap(values: Value[]): Tensor {
  return new Tensor(values[0]);
}

function axis(a: number, rank: number): number {
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
