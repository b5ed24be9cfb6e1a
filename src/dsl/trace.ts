// The tracing context: while a model's forward runs on symbolic tensors, every DSL op appends a node to
// the current graph builder and stamps it with the model-code line that called it.
import { fileURLToPath } from "node:url";
import path from "node:path";
import { GraphBuilder } from "../../ir/builder.ts";
import { ShapeError } from "../../ir/ops.ts";
import type { AttrsOf, OpName } from "../../ir/op_attrs.ts";
import { type SourceLoc, type Value, formatLoc } from "../../ir/types.ts";
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
  /** Whether this is the training program: dropout is the identity otherwise (PyTorch's eval mode). */
  training: boolean;
  /** The next dropout call's seed: each call draws its own masks. */
  nextDropout: number;
}

let current: TraceState | undefined;

export function currentTrace(): TraceState {
  if (!current) throw new TraceError("DSL ops can only run while a model is being traced (inside forward)");
  return current;
}

/** Runs `fn` with a fresh trace on `builder`, of the training program until `fn` says otherwise; nesting is not allowed. */
export function withTrace<T>(builder: GraphBuilder, fn: () => T): T {
  if (current) throw new Error("internal: nested trace");
  current = { builder, params: new Map(), nextRegion: 0, training: true, nextDropout: 0 };
  try {
    return fn();
  } finally {
    current = undefined;
  }
}

const dslDir = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(dslDir, "../..");
// Frames in the compiler itself are skipped, and so are frames in any installed package (a library of
// layers the user did not write); the first frame left is the model's own code.
const internalDirs = ["src", "ir", "codegen", "native", "bin", "base", "plan", "runtime", "node_modules"].map((d) =>
  path.join(repoRoot, d),
);
const isInternal = (file: string) =>
  internalDirs.some((d) => file.startsWith(d + path.sep)) || file.startsWith("node:") || file.split(path.sep).includes("node_modules");

/**
 * The model files loaded (src/load registers each, by its path and its real path): a location is the
 * first frame in one of them when there is one, so an error inside a helper module the model calls
 * (its own, or a sample's) points at the model's line that called it.
 */
const modelFiles = new Set<string>();

export function registerModelFile(...paths: string[]): void {
  for (const p of paths) modelFiles.add(p);
}

/**
 * How deep a stack is read: V8 keeps 10 frames by default, and a model's line can lie deeper than that
 * under nested modules and helpers (DSL op, module, block, checkpoint region, list, model).
 */
const STACK_FRAMES = 100;

/** Runs `fn` with stacks deep enough to reach the model's own frames (for errors the model throws). */
export function withDeepStacks<T>(fn: () => T): T {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = Math.max(limit, STACK_FRAMES);
  try {
    return fn();
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** The model line that called the op: its first stack frame in the model file, else outside the compiler. */
export function callerLoc(): SourceLoc | undefined {
  return locOfFrames(stackHere().frames);
}

/** Frames a first, cheap stack is read to: enough for almost every op's call, from the model's line. */
const SHORT_STACK = 12;

/** An Error made where the DSL was called, and its frames outside the compiler (read once). */
interface Here {
  error: Error;
  frames: Frame[];
}

/**
 * An Error made here, for reading the model's line from: a short stack first, and a deep one only when
 * the short one does not reach the model's code. Every op traced makes one (emit), and a deep stack
 * costs more than the rest of tracing.
 */
function stackHere(): Here {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = SHORT_STACK;
  const short = new Error();
  Error.stackTraceLimit = limit;
  const frames = userFrames(short);
  const reached = modelFiles.size === 0 ? frames.length > 0 : frames.some((f) => modelFiles.has(f.file));
  if (reached) return { error: short, frames };
  const deep = withDeepStacks(() => new Error());
  return { error: deep, frames: userFrames(deep) };
}

/** The model line where an error was thrown (its first stack frame in model code). */
export function callerLocOf(error: unknown): SourceLoc | undefined {
  return locOfFrames(userFrames(error));
}

function locOfFrames(frames: Frame[]): SourceLoc | undefined {
  const chosen = frames.find((f) => modelFiles.has(f.file)) ?? frames[0];
  return chosen && { file: path.relative(process.cwd(), chosen.file) || chosen.file, line: chosen.line, col: chosen.col };
}

/** The innermost frame outside the compiler, where it is not callerLocOf's: a helper inside the model's call. */
export function innermostHelperLoc(error: unknown): SourceLoc | undefined {
  const [first] = userFrames(error);
  const chosen = callerLocOf(error);
  if (!first || !chosen) return undefined;
  const loc = { file: path.relative(process.cwd(), first.file) || first.file, line: first.line, col: first.col };
  return loc.file === chosen.file && loc.line === chosen.line && loc.col === chosen.col ? undefined : loc;
}

interface Frame {
  file: string;
  line: number;
  col: number;
}

/**
 * Each stack line read, parsed once: a model's ops are called from a few hundred lines, each many times
 * (once a layer), and parsing a line (a regular expression, a file URL, the compiler's folders) cost
 * more than the rest of tracing. Whether the file is in the compiler is kept beside the frame, as the
 * model files that override it can be registered later.
 */
const parsedLines = new Map<string, { frame: Frame; internal: boolean } | null>();

function parseStackLine(line: string): { frame: Frame; internal: boolean } | null {
  let parsed = parsedLines.get(line);
  if (parsed !== undefined) return parsed;
  const m = /\(?((?:file:\/\/)?\/[^():]+):(\d+):(\d+)\)?\s*$/.exec(line);
  if (m) {
    const file = m[1].startsWith("file://") ? fileURLToPath(m[1]) : m[1];
    parsed = { frame: { file, line: Number(m[2]), col: Number(m[3]) }, internal: isInternal(file) };
  } else parsed = null;
  parsedLines.set(line, parsed);
  return parsed;
}

function userFrames(error: unknown): Frame[] {
  const stack = error instanceof Error ? (error.stack?.split("\n").slice(1) ?? []) : [];
  const frames: Frame[] = [];
  for (const line of stack) {
    const parsed = parseStackLine(line);
    if (!parsed || (parsed.internal && !modelFiles.has(parsed.frame.file))) continue;
    frames.push(parsed.frame);
  }
  return frames;
}

/** Adds a node for the calling model line; a shape error becomes a TraceError at that line. */
export function emit<K extends OpName>(op: K, inputs: readonly Value[], attrs: AttrsOf<K> = {} as AttrsOf<K>): Value[] {
  const { error, frames } = stackHere();
  const loc = locOfFrames(frames);
  const trace = currentTrace();
  const marked = trace.region === undefined ? attrs : { ...attrs, ckpt: trace.region };
  try {
    return [...trace.builder.add(op, inputs, marked, loc).outputs];
  } catch (e) {
    if (e instanceof ShapeError) throw new TraceError(`shape error: ${e.message}${helperNote(error)}`, loc);
    throw e;
  }
}

/** A TraceError at the model line that called the DSL, naming the helper in between if there is one. */
export function traceErrorHere(message: string): TraceError {
  const { error, frames } = stackHere();
  return new TraceError(message + helperNote(error), locOfFrames(frames));
}

/** Where a helper the model called went wrong, when that is not the model's line itself. */
export function helperNote(here: Error): string {
  const inner = innermostHelperLoc(here);
  return inner ? ` (in the helper at ${formatLoc(inner)})` : "";
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
