// The one IR of Stowage: a typed SSA graph. Every value has a static shape and dtype; every node has the
// source location of the DSL line that made it. Forward, backward and optimizer are all ordinary nodes.

export type DType = "f32" | "i32";
export type Shape = readonly number[];

export interface SourceLoc {
  file: string;
  line: number;
  col: number;
}

/** Which part of the training step a node belongs to; used by reports and passes, never by semantics. */
export type Phase = "forward" | "backward" | "optimizer";

import type { AttrsOf, OpName } from "./op_attrs.ts";

export type AttrValue = number | boolean | string | readonly number[];
export type Attrs = Readonly<Record<string, AttrValue>>;

export interface Value {
  readonly id: number;
  readonly shape: Shape;
  readonly dtype: DType;
  /** Node that defines this value, and which of its outputs it is. */
  readonly producer: Node;
  readonly index: number;
}

/**
 * Where a node runs: on the device (the default), or on the host, which the offload pass chooses for
 * the optimizer when the model data it updates lives in host memory.
 */
export type Placement = "device" | "host";

/** What a host-device copy carries: a chunk of model data or a gradient, or a saved activation. */
export type CopyPayload = "model" | "activation";

interface NodeFields {
  readonly id: number;
  readonly inputs: readonly Value[];
  readonly outputs: readonly Value[];
  readonly loc?: SourceLoc;
  readonly phase: Phase;
  readonly placement: Placement;
  /** Set on copies (chunk_h2d, copy_d2h) by the passes that make them. */
  readonly payload?: CopyPayload;
}

/** A node of op K, its attributes typed by the op. */
export type NodeOf<K extends OpName> = NodeFields & { readonly op: K; readonly attrs: Readonly<AttrsOf<K>> };

/** Any node: narrowing on `op` gives its attributes' type. */
export type Node = { [K in OpName]: NodeOf<K> }[OpName];

export type InitSpec = { kind: "normal"; std: number } | { kind: "zeros" } | { kind: "ones" };

/**
 * Tensor parallelism: which part of the full (checkpoint) parameter a rank holds. The axis is `groups`
 * equal blocks (q, k and v of a fused projection), and each block is cut into `ranks` equal parts;
 * rank r holds part r of every block. The parts may run past `full` (a padded vocabulary): those
 * rows are zero and are neither saved nor loaded.
 */
export interface ShardSpec {
  readonly axis: number;
  readonly groups: number;
  /** Extent of the axis in the full tensor. */
  readonly full: number;
  readonly ranks: number;
}

/** A trainable parameter: its `param` node's output is the parameter value. */
export interface ParamInfo {
  readonly name: string;
  readonly shape: Shape;
  readonly init: InitSpec;
  /** Decoupled weight decay applies (nanoGPT: parameters of two or more dimensions). */
  readonly decay: boolean;
  readonly value: Value;
  readonly loc?: SourceLoc;
  /** Set by the shard pass: `shape` is then this rank's part. */
  readonly shard?: ShardSpec;
  /**
   * A buffer (PyTorch's register_buffer): stored and saved in checkpoints as a parameter is, but never
   * trained: it gets no gradient and no optimizer state, and the loss need not depend on it.
   */
  readonly buffer?: true;
}

/** The parameters the optimizer trains: every one but the buffers. */
export function trainedParams(g: Pick<Graph, "params">): readonly ParamInfo[] {
  return g.params.filter((p) => p.buffer !== true);
}

/**
 * A whole program: nodes in execution order (a valid topological order), the parameters, and the named
 * values the runtime reads or writes (tokens, targets, loss, logits, gradients).
 */
export interface Graph {
  readonly nodes: readonly Node[];
  readonly params: readonly ParamInfo[];
  /** Named program inputs and results, e.g. tokens, targets, loss, logits, grad_norm. */
  readonly named: Readonly<Record<string, Value>>;
  /** Final gradient of each parameter, by parameter name (after autodiff). */
  readonly grads: Readonly<Record<string, Value>>;
}

/**
 * A task model's named input (a model that declares its own inputs and loss) is named `input.<name>`
 * among the graph's named values, apart from the loss, the logits and the token stream's tokens/targets.
 */
export const TASK_INPUT_PREFIX = "input.";

/** A task model's named inputs in a graph, in the order they were traced: [name, value]. */
export function taskInputsOf(g: Pick<Graph, "named">): [string, Value][] {
  return Object.entries(g.named)
    .filter(([k]) => k.startsWith(TASK_INPUT_PREFIX))
    .map(([k, v]) => [k.slice(TASK_INPUT_PREFIX.length), v]);
}

/**
 * One more than the largest value id in the graph. Ids are dense (ir/builder.ts), so passes that map
 * every value keep the map in an array of this length: a Map's lookups cost more than the rest of them.
 */
export function valueIdBound(g: Graph): number {
  let bound = 0;
  for (const n of g.nodes) for (const v of n.outputs) if (v.id >= bound) bound = v.id + 1;
  return bound;
}

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Both dtypes (f32, i32) are four bytes. */
export function dtypeBytes(_dtype: DType): number {
  return 4;
}

export function valueBytes(v: Value): number {
  return numel(v.shape) * dtypeBytes(v.dtype);
}

export function formatLoc(loc: SourceLoc | undefined): string {
  return loc ? `${loc.file}:${loc.line}:${loc.col}` : "<unknown>";
}

export function shapeEq(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function formatShape(s: Shape): string {
  return `[${s.join(",")}]`;
}
