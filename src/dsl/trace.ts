// The tracing context: while a model's forward runs on symbolic tensors, every DSL op appends a node to
// the current graph builder and stamps it with the model-code line that called it.
import { fileURLToPath } from "node:url";
import path from "node:path";
import { GraphBuilder } from "../../ir/builder.ts";
import { ShapeError } from "../../ir/ops.ts";
import type { AttrsOf, OpName } from "../../ir/op_attrs.ts";
import type { SourceLoc, Value } from "../../ir/types.ts";
import type { Parameter } from "./parameter.ts";

/** A model error found while tracing (shape mismatch, bad config), located at a model-code line. */
export class TraceError extends Error {
  constructor(
    message: string,
    readonly loc?: SourceLoc,
  ) {
    super(message);
    this.name = "TraceError";
  }
}

interface TraceState {
  builder: GraphBuilder;
  params: Map<Parameter, Value>;
  /** The checkpoint region being traced (nodes get attribute ckpt=<id>), and the next free id. */
  region?: number;
  nextRegion: number;
}

let current: TraceState | undefined;

export function currentTrace(): TraceState {
  if (!current) throw new TraceError("DSL ops can only run while a model is being traced (inside forward)");
  return current;
}

/** Runs `fn` with a fresh trace on `builder`; nesting is not allowed. */
export function withTrace<T>(builder: GraphBuilder, fn: () => T): T {
  if (current) throw new Error("internal: nested trace");
  current = { builder, params: new Map(), nextRegion: 0 };
  try {
    return fn();
  } finally {
    current = undefined;
  }
}

const dslDir = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(dslDir, "../..");
// Frames in the compiler itself are skipped; the first frame left is the model's own code.
const internalDirs = ["src", "ir", "codegen", "native", "bin", "node_modules"].map((d) => path.join(repoRoot, d));

/** The first stack frame outside the DSL and compiler: the model line that called the op. */
export function callerLoc(): SourceLoc | undefined {
  return callerLocOf(new Error());
}

/** The model line where an error was thrown (its first stack frame in model code). */
export function callerLocOf(error: unknown): SourceLoc | undefined {
  const stack = error instanceof Error ? (error.stack?.split("\n").slice(1) ?? []) : [];
  for (const line of stack) {
    const m = /\(?((?:file:\/\/)?\/[^():]+):(\d+):(\d+)\)?\s*$/.exec(line);
    if (!m) continue;
    const file = m[1].startsWith("file://") ? fileURLToPath(m[1]) : m[1];
    if (internalDirs.some((d) => file.startsWith(d + path.sep)) || file.startsWith("node:")) continue;
    return { file: path.relative(process.cwd(), file) || file, line: Number(m[2]), col: Number(m[3]) };
  }
  return undefined;
}

/** Adds a node for the calling model line; a shape error becomes a TraceError at that line. */
export function emit<K extends OpName>(op: K, inputs: readonly Value[], attrs: AttrsOf<K> = {} as AttrsOf<K>): Value[] {
  const loc = callerLoc();
  const trace = currentTrace();
  const marked = trace.region === undefined ? attrs : { ...attrs, ckpt: trace.region };
  try {
    return [...trace.builder.add(op, inputs, marked, loc).outputs];
  } catch (e) {
    if (e instanceof ShapeError) throw new TraceError(`shape error: ${e.message}`, loc);
    throw e;
  }
}

/**
 * Runs `fn` as one checkpoint region: with --checkpoint blocks, what it computes is not kept for the
 * backward but recomputed there from the region's inputs. Regions do not nest: an inner one joins the
 * outer.
 */
export function inCheckpointRegion<T>(fn: () => T): T {
  const trace = currentTrace();
  if (trace.region !== undefined) return fn();
  trace.region = trace.nextRegion++;
  try {
    return fn();
  } finally {
    trace.region = undefined;
  }
}
