// The program of a `fused` node (ir/passes/fuse_elementwise.ts): the elementwise ops of a group, each
// kept as the op and attributes it had, reading the node's inputs (x0, x1, ...) and earlier steps (s0,
// s1, ...). It is held as text in the node's `program` attribute, so `stow ir` shows it and the plan
// digests cover it:
//   unary{fn=square}(x0); reduce{fn=mean}(s0)
// Every step but fills (constants) covers the group's elements one for one: its value has `n` elements,
// the same for all, and element i of a step reads element i of the steps it names. An input may be
// smaller and broadcast as `binary`'s right operand does. A `reshape` of a step is that step's value
// under another shape: a value is contiguous, so element i is the same element (an input's broadcast
// then follows the shape of the step that reads it). A last `reduce` may sum each row of the step it
// reads: the group is then one loop over rows. The interpreter (ir/interpret.ts) and both backends'
// generated kernels (codegen/fused_kernel.ts) read the same steps.
import type { AttrsOf, OpName } from "./op_attrs.ts";
import { type Shape, type Value, type AttrValue, numel } from "./types.ts";

/**
 * The ops a fused node can hold: elementwise ones, constants, reshapes of steps (views: no work), and a
 * trailing reduction over the last axis.
 */
export const FUSABLE_OPS = [
  "fill",
  "reshape",
  "add",
  "mul",
  "scale",
  "unary",
  "unary_bwd",
  "binary",
  "binary_bwd",
  "where",
  "silu",
  "silu_bwd",
  "gelu",
  "gelu_bwd",
  "reduce_bwd",
  "reduce",
] as const satisfies readonly OpName[];
export type FusableOp = (typeof FUSABLE_OPS)[number];

export function isFusableOp(op: OpName): op is FusableOp {
  return (FUSABLE_OPS as readonly string[]).includes(op);
}

/** What a step reads: one of the fused node's inputs, or an earlier step's value. */
export interface Operand {
  readonly from: "input" | "step";
  readonly index: number;
}

/** One op of the group, with its own attributes (marks left out). */
export interface FusedStepOf<K extends FusableOp> {
  readonly op: K;
  readonly attrs: AttrsOf<K>;
  readonly args: readonly Operand[];
}

/** Any step: narrowing on `op` gives its attributes' type. */
export type FusedStep = { [K in FusableOp]: FusedStepOf<K> }[FusableOp];

/** A parsed program and the shape of each step's value, inferred through the registry. */
export interface FusedProgram {
  readonly steps: readonly FusedStep[];
  readonly shapes: readonly Shape[];
  /** Elements each (non-fill) step covers; for a reduction, those of its input. */
  readonly n: number;
  /** The trailing reduction's row length, when the program ends in one. */
  readonly reduceC?: number;
}

export class FusedProgramError extends Error {}

function formatValue(v: AttrValue): string {
  return Array.isArray(v) ? `[${v.join(",")}]` : String(v);
}

function parseValue(text: string): AttrValue {
  if (text.startsWith("[")) return JSON.parse(text) as number[];
  if (text === "true" || text === "false") return text === "true";
  // Numbers as String() writes them, Infinity included (a mask's fill is -Infinity); strings are names.
  const n = Number(text);
  return text !== "" && !Number.isNaN(n) ? n : text;
}

export function formatStep(s: FusedStep): string {
  const attrs = Object.entries(s.attrs).map(([k, v]) => `${k}=${formatValue(v as AttrValue)}`);
  const args = s.args.map((a) => `${a.from === "input" ? "x" : "s"}${a.index}`);
  return `${s.op}${attrs.length ? `{${attrs.join(" ")}}` : ""}(${args.join(",")})`;
}

export function formatProgram(steps: readonly FusedStep[]): string {
  return steps.map(formatStep).join("; ");
}

const STEP = /^(\w+)(?:\{([^}]*)\})?\(([^)]*)\)$/;

function parseStep(text: string): FusedStep {
  const m = STEP.exec(text.trim());
  if (!m || !isFusableOp(m[1] as OpName)) throw new FusedProgramError(`fused: cannot read the step "${text.trim()}"`);
  const attrs: Record<string, AttrValue> = {};
  for (const pair of (m[2] ?? "").split(" ").filter(Boolean)) {
    const eq = pair.indexOf("=");
    if (eq < 1) throw new FusedProgramError(`fused: attribute "${pair}" of "${text.trim()}" is not key=value`);
    attrs[pair.slice(0, eq)] = parseValue(pair.slice(eq + 1));
  }
  const args = m[3]
    .split(",")
    .filter(Boolean)
    .map((a): Operand => {
      const ref = /^([xs])(\d+)$/.exec(a.trim());
      if (!ref) throw new FusedProgramError(`fused: operand "${a}" of "${text.trim()}" is neither xN (an input) nor sN (a step)`);
      return { from: ref[1] === "x" ? "input" : "step", index: Number(ref[2]) };
    });
  return { op: m[1], attrs, args } as FusedStep;
}

const parsed = new Map<string, readonly FusedStep[]>();

/** The steps of a program's text (parsed once per distinct text: passes, codegen and the planner all ask). */
export function parseSteps(text: string): readonly FusedStep[] {
  let steps = parsed.get(text);
  if (!steps) {
    steps = text.split(";").map(parseStep);
    parsed.set(text, steps);
  }
  return steps;
}

/** A stand-in value of a shape, for asking the registry a step's type (infer reads shapes and dtypes only). */
function shaped(shape: Shape): Value {
  return { id: -1, shape, dtype: "f32", index: 0, producer: undefined as never };
}

/**
 * The program of `text` over inputs of these shapes, checked: operands name inputs that exist and
 * earlier steps, each step's type is what the registry infers, every step but fills covers the same
 * elements, and only the last may be a reduction. `infer` is the registry's (passed in: ir/ops.ts
 * imports this file).
 */
export function readProgram(
  text: string,
  inputs: readonly Shape[],
  infer: (op: FusableOp, inputs: readonly Value[], attrs: AttrsOf<FusableOp>) => Shape,
): FusedProgram {
  const steps = parseSteps(text);
  const shapes: Shape[] = [];
  let n: number | undefined;
  let reduceC: number | undefined;
  steps.forEach((s, i) => {
    const operandShapes = s.args.map((a) => {
      const shape = a.from === "input" ? inputs[a.index] : a.index < i ? shapes[a.index] : undefined;
      if (!shape) throw new FusedProgramError(`fused: step ${i} (${formatStep(s)}) reads ${a.from} ${a.index}, which it cannot see`);
      return shape;
    });
    const shape = infer(s.op, operandShapes.map(shaped), s.attrs);
    shapes.push(shape);
    if (s.op === "fill") return;
    const covers = s.op === "reduce" ? numel(operandShapes[0]) : numel(shape);
    if (n !== undefined && covers !== n)
      throw new FusedProgramError(`fused: step ${i} (${formatStep(s)}) covers ${covers} elements, the others ${n}`);
    n = covers;
    if (s.op === "reduce") {
      if (i !== steps.length - 1) throw new FusedProgramError(`fused: only the last step may be a reduction, not step ${i}`);
      if (s.args[0].from !== "step") throw new FusedProgramError("fused: the reduction must read a step");
      reduceC = operandShapes[0][operandShapes[0].length - 1];
    }
    if (s.op === "reshape" && s.args[0].from !== "step")
      throw new FusedProgramError("fused: a reshape must read a step (an input is reshaped outside the group)");
  });
  if (n === undefined) throw new FusedProgramError("fused: the program has no step besides constants");
  return { steps, shapes, n, ...(reduceC !== undefined && { reduceC }) };
}
