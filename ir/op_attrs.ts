// The attributes of every op, by op name. This interface is the list of ops: `OpName` is its keys,
// and each table keyed by op (the registry in ir/ops.ts, the gradient rules, each backend's kernel
// bindings) is typed over it, so adding an op here without an entry there does not compile. A node's
// `attrs` are typed by its op (ir/types.ts), so passes read them without casts.
import type { DType, Shape } from "./types.ts";

/** Marks any node may carry: the checkpoint region a forward node belongs to, and whether it is a recomputation. */
export interface NodeMarks {
  readonly ckpt?: number;
  readonly recompute?: boolean;
}

/** How a parameter is split under tensor parallelism (the DSL's annotation, read by ir/passes/shard.ts). */
export type ParallelStyle = "column" | "row" | "vocab";

type None = Record<never, never>;

export interface OpAttrs {
  // Leaves: values the runtime provides.
  param: { readonly name: string; readonly shape: Shape; readonly parallel?: ParallelStyle; readonly groups?: number };
  opt_state: { readonly name: string; readonly shape: Shape };
  input: { readonly name: string; readonly shape: Shape; readonly dtype: DType };
  iota: { readonly n: number };
  fill: { readonly shape: Shape; readonly value: number };

  embedding: None;
  embedding_bwd: { readonly V: number };
  embedding_bwd_acc: None;
  matmul: { readonly ta?: boolean; readonly tb?: boolean };
  add: None;
  mul: None;
  scale: { readonly s: number };
  sum_rows: { readonly to: Shape };
  layernorm: { readonly eps: number };
  /** bias=false: the forward had no bias, so there is no db output. */
  layernorm_bwd: { readonly eps: number; readonly bias?: boolean };
  /** Elementwise y = fn(x); `p` is the exponent of "pow" (x^p with a constant p). */
  unary: { readonly fn: UnaryFn; readonly p?: number };
  /** dx = dy * fn'(x): inputs x, dy. */
  unary_bwd: { readonly fn: UnaryFn; readonly p?: number };
  /**
   * Elementwise y = fn(a, b) with b broadcast (ir/ops.ts binaryBroadcast): b's shape is a trailing part
   * of a's, or that with its last axes 1 (a keepdim reduction's [..., 1] against [..., C]).
   */
  binary: { readonly fn: BinaryFn };
  /** The gradient of `binary` for operand `side` (0: a, 1: b), in a's shape: inputs a, b, dy. */
  binary_bwd: { readonly fn: BinaryFn; readonly side: 0 | 1 };
  /** A reduction over the last axis, kept as an axis of 1: [..., C] -> [..., 1]. */
  reduce: { readonly fn: ReduceFn };
  /**
   * dx of `reduce`. max: inputs x, y, dy. sum and mean: input dy alone, with `C` the reduced axis's
   * length (dy spread over it), so the backward keeps no activation alive.
   */
  reduce_bwd: { readonly fn: ReduceFn; readonly C?: number };
  gelu: None;
  gelu_bwd: None;
  /**
   * Scaled dot-product attention: causal (query i sees keys j <= i) unless `causal` is false. Inputs q,
   * k, v and optionally an additive mask that broadcasts to the scores [..., heads, Tq, Tk] as PyTorch's
   * attn_mask (ir/attention_mask.ts; -inf where a query must not see a key); q's length Tq may differ
   * from k's and v's Tk (cross-attention).
   */
  attention: { readonly causal?: boolean };
  /**
   * Inputs q, k, v, y, lse, dy and the forward's mask if it had one. With `maskGrad` a fourth output,
   * the mask's gradient (a learned bias): the scores' gradient summed over the axes the mask broadcasts over.
   */
  attention_bwd: { readonly causal?: boolean; readonly maskGrad?: boolean };
  /**
   * Zeroes each element with probability p and scales the others by 1 / (1 - p). Whether element i is
   * kept is a hash of (seed, the training step, i) (kernel_math.h's dropout_keep), so it is the same
   * wherever it is computed again: in the gradient, which is dropout of dy, and in recomputation.
   */
  dropout: { readonly p: number; readonly seed: number };
  cross_entropy: None;
  cross_entropy_bwd: None;
  linear_cross_entropy: LmHeadAttrs;
  linear_cross_entropy_bwd: LmHeadAttrs;
  reshape: { readonly shape: Shape };
  transpose: { readonly perm: readonly number[] };
  split: { readonly sizes: readonly number[] };
  /** Joins the inputs along `axis` (absent: the last), every other axis equal. */
  concat: { readonly axis?: number };
  grad_norm: None;

  // Offloaded model data and moved activations: copies name the host buffer or chunk they serve.
  chunk_h2d: { readonly elements: number; readonly chunk?: number; readonly activation?: string };
  chunk_view: { readonly offset: number; readonly shape: Shape; readonly name?: string };
  copy_d2h: { readonly name: string };
  wait: None;
  adamw: { readonly decay?: boolean };
  rope: { readonly base: number; readonly inverse?: boolean };
  silu: None;
  silu_bwd: None;

  // Tensor parallelism.
  /**
   * Over the tensor-parallel ranks, or with group "dp" over the data-parallel ones (ir/passes/data_parallel.ts);
   * mean divides the sum by the group's size.
   */
  all_reduce: { readonly reduce: "sum" | "max" | "mean"; readonly group?: "dp" };
  all_gather: { readonly ranks: number };
  /**
   * ZeRO (ir/passes/adamw.ts): one chunk's AdamW update on this data-parallel rank's shard of it. Inputs
   * m, v (the shard's moments, `shard` floats), the norm when `clip`, then the chunk's `count` parameters
   * and their gradients; parameter k lies at element `offsets[k]` of the chunk, and decay[k] is 1 when
   * weight decay applies to it (attributes hold numbers, not booleans, in lists).
   */
  zero_adamw: {
    readonly chunk: number;
    readonly count: number;
    readonly shard: number;
    readonly offsets: readonly number[];
    readonly decay: readonly number[];
    readonly clip: boolean;
    /** ZeRO 2: one input after the parameters, this rank's shard of the chunk's gradient, instead of each parameter's. */
    readonly gradShard?: boolean;
    /**
     * ZeRO 3: one input instead of the parameters, this rank's persistent shard of the chunk's parameters
     * (zero_param_shard), which the update writes; `sizes` then gives each parameter's elements.
     */
    readonly paramShard?: boolean;
    readonly sizes?: readonly number[];
  };
  /** ZeRO 2: a chunk's gradients packed at their parameters' offsets into ranks x shard floats, padding zero. */
  zero_pack: { readonly chunk: number; readonly shard: number; readonly ranks: number; readonly offsets: readonly number[] };
  /** ZeRO 2: the mean over the data-parallel ranks of a packed chunk gradient; this rank keeps its shard. */
  zero_reduce_scatter: { readonly chunk: number; readonly shard: number; readonly ranks: number };
  /** ZeRO: the chunk's whole parameters again from every data-parallel rank's updated shard, in place. */
  zero_gather: { readonly chunk: number; readonly shard: number; readonly ranks: number };
  /** ZeRO 3: this data-parallel rank's persistent shard of a chunk's parameters (`shard` floats), named `name`. */
  zero_param_shard: { readonly name: string; readonly shape: Shape; readonly chunk: number };
  /** ZeRO 3: a chunk's whole parameters, into a temporary, from every data-parallel rank's shard of them. */
  zero_all_gather: { readonly chunk: number; readonly shard: number; readonly ranks: number };
  reduce_scatter: { readonly ranks: number };
  broadcast: { readonly root: number };
  tp_copy: None;
  shard_slice: { readonly ranks: number };
  embedding_vp: { readonly vocab: number };
  embedding_vp_bwd: { readonly V: number };
  cross_entropy_vp_max: { readonly vocab: number };
  cross_entropy_vp_sums: { readonly vocab: number };
  cross_entropy_vp: { readonly vocab: number };
  cross_entropy_vp_bwd: { readonly vocab: number };
  sum_squares: None;
  norm_from_squares: None;

  // Data movement along any axis (issue 17). Like transpose, these keep their input's dtype, except
  // the gradients, which are f32.
  /** x narrowed to [start, start + length) along axis `dim` (torch.narrow). */
  slice: { readonly dim: number; readonly start: number; readonly length: number };
  /**
   * Constant padding (torch.nn.functional.pad): axis rank - before.length + k gets before[k] elements of
   * `value` in front and after[k] behind; a negative amount crops instead, so pad's gradient is a pad.
   */
  pad: { readonly before: readonly number[]; readonly after: readonly number[]; readonly value: number };
  /** x broadcast to `shape` (torch.expand): x's axes align with shape's trailing ones, each equal or 1. */
  expand: { readonly shape: Shape };
  /** The gradient of expand: dy summed over the axes expand broadcast, to `shape` (expand's input's). */
  expand_bwd: { readonly shape: Shape };
  /**
   * Slices of x along `dim` picked by i32 indices [...] (torch.index_select, with indices of any shape):
   * the output's shape is x's with axis `dim` replaced by the indices' shape.
   */
  index_select: { readonly dim: number };
  /** dx of index_select: inputs indices, dy; `D` is x's length along `dim`. Repeated indices add up. */
  index_select_bwd: { readonly dim: number; readonly D: number };
  /** out[.., j, ..] = x[.., idx[.., j, ..], ..] along `dim` (torch.gather): idx has x's shape but along `dim`. */
  gather: { readonly dim: number };
  /** dx of gather: inputs idx, dy; `D` is x's length along `dim`. Repeated indices add up. */
  gather_bwd: { readonly dim: number; readonly D: number };

  /**
   * where(cond, a, b): a where cond is nonzero, else b (torch.where on a float mask). The output has the
   * shape of one operand, and the other two broadcast to it as `binary`'s right operand does
   * (ir/ops.ts whereShape).
   */
  where: None;

  /**
   * A group of elementwise ops, and maybe a trailing reduction, run as one generated kernel
   * (ir/passes/fuse_elementwise.ts). `program` is its steps (ir/fused_program.ts); output k is the
   * value of step outs[k], the ones read outside the group.
   */
  fused: { readonly program: string; readonly outs: readonly number[] };
}

/**
 * The functions of `unary`, `binary` and `reduce`. The kernels take the index of a name in these lists
 * (runtime/core/kernel_math.h's UnaryFn, BinaryFn and ReduceFn enumerate them in this order).
 */
export const UNARY_FNS = ["neg", "exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "abs", "relu", "square", "reciprocal", "pow"] as const;
export type UnaryFn = (typeof UNARY_FNS)[number];
// The comparisons (eq to ge) give a float mask, 1 where the relation holds and 0 elsewhere; no gradient.
export const BINARY_FNS = ["add", "sub", "mul", "div", "pow", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge"] as const;
export type BinaryFn = (typeof BINARY_FNS)[number];
export const COMPARISON_FNS: readonly BinaryFn[] = ["eq", "ne", "lt", "le", "gt", "ge"];
export function isComparison(fn: BinaryFn): boolean {
  return COMPARISON_FNS.includes(fn);
}
export const REDUCE_FNS = ["sum", "mean", "max"] as const;
export type ReduceFn = (typeof REDUCE_FNS)[number];

/** The fused LM head's transposed-weight flag and the logits tile the fuse pass chose. */
export interface LmHeadAttrs {
  readonly tb?: boolean;
  readonly rows: number;
  readonly cols: number;
}

export type OpName = keyof OpAttrs;

/** The attributes a node of op K carries: its own and the marks every node may have. */
export type AttrsOf<K extends OpName> = OpAttrs[K] & NodeMarks;
