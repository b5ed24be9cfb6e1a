// The generated kernel of a `fused` node (ir/passes/fuse_elementwise.ts), as both backends' templates
// render it (codegen/backends/{cpu,cuda}/fused_kernels.njk hold the loop's shape): the statements of
// each step, in the program's order, calling the same kernel_math.h formula the op's own kernel calls.
//
// Bitwise equality with the unfused kernels rests on three things decided here:
// - each step's value goes through stow::math::kept, which stops nvcc from contracting one op's
//   product into the next op's sum (g++ builds contract nothing: -ffp-contract=off, codegen/toolchain.ts);
// - float constants (a scale, an exponent, a fill's value) are read through stow::math::opaque, so the
//   compiler cannot specialise a formula on them as the unfused kernels, which take them as arguments,
//   never are;
// - a trailing reduction sums each row in index order with reduce_row_of, which the reduce kernels use.
import { binaryBroadcast, fusedProgram } from "../ir/ops.ts";
import { BINARY_FNS, REDUCE_FNS, UNARY_FNS } from "../ir/op_attrs.ts";
import type { FusedProgram, FusedStep, FusedStepOf, Operand } from "../ir/fused_program.ts";
import { type NodeOf, type Shape, formatLoc, valueBytes } from "../ir/types.ts";
import type { MemoryPlan } from "../ir/passes/memory_plan.ts";
import { formatNode } from "../ir/printer.ts";
import { cFloat, fusedKernelName, valuePointer } from "./backends/cpu/kernel_calls.ts";

/** What a backend's fused_kernels.njk renders for one fused node. */
export interface FusedKernelView {
  name: string;
  /** The node's IR line and model line, for the comment above the kernel and the CUDA launch's name. */
  text: string;
  label: string;
  /** Declarations before the loop: pointers into the arena and the opaque constants. */
  declarations: string[];
  /** Each output, with its bytes, for Ctx::touch. */
  outputs: { name: string; bytes: number }[];
  /** Elements of the loop, as `rows` rows of `R` (a reduction's rows, or the group's last axis). */
  n: number;
  rows: number;
  R: number;
  /** A trailing reduction: its function's number, the output it writes a row of, and the step it sums. */
  reduce?: { fn: number; out: string; term: string };
  /** Per element i: the steps' statements, then the stores of the outputs. */
  body: string[];
}

const M = "stow::math";

/**
 * The loop the kernel runs: `rows` rows of `R` elements, element i = r R + j. A reduction's rows are its
 * own; otherwise rows of the group's last axis, so that an input broadcast along it (a keepdim
 * reduction's [..., 1], a weight [C]) is read once per row or as a plain sweep, as the unfused kernels
 * read them, unless that leaves too few rows to share among threads.
 */
function loopShape(program: FusedProgram): { rows: number; R: number } {
  if (program.reduceC !== undefined) return { rows: program.n / program.reduceC, R: program.reduceC };
  const shape = program.shapes[program.steps.findIndex((s) => s.op !== "fill")];
  const last = shape.length > 0 ? shape[shape.length - 1] : 1;
  const R = last > 0 && program.n / last >= MIN_ROWS ? last : 1;
  return { rows: program.n / R, R };
}

/** Rows below which a kernel loops over elements instead: every thread should have rows to take. */
const MIN_ROWS = 64;

/** How element i of operand `a`, read by a step of shape `out`, is named: a step's register or an input's element. */
function operand(a: Operand, out: Shape, inputs: readonly Shape[], program: FusedProgram, loop: { rows: number; R: number }): string {
  if (a.from === "step") return `s${a.index}`;
  const shape = inputs[a.index];
  const fit = binaryBroadcast(out, shape);
  if (!fit) throw new Error(`internal: fused input ${a.index} ${String(shape)} does not broadcast to ${String(out)}`);
  const { inner, nb } = fit;
  const x = `x${a.index}`;
  if (inner === 1 && nb === program.n) return `${x}[i]`;
  if (inner === 1 && nb === loop.R) return `${x}[j]`;
  if (inner === loop.R && nb === loop.rows) return `${x}[r]`;
  if (inner === loop.R) return `${x}[r % ${nb}]`;
  if (inner === 1) return `${x}[i % ${nb}]`;
  return `${x}[(i / ${inner}) % ${nb}]`;
}

/** The expression of one step over its operands' names; `k` names the step's opaque constant, if it has one. */
function expression(s: FusedStep, args: readonly string[], k: string): string {
  const [a, b, c] = args;
  switch (s.op) {
    case "fill":
      return k;
    case "reshape":
      return a;
    case "add":
      return `${a} + ${b}`;
    case "mul":
      return `${a} * ${b}`;
    case "scale":
      return `${a} * ${k}`;
    case "unary":
      return `${M}::unary(${UNARY_FNS.indexOf(s.attrs.fn)}, ${a}, ${k})`;
    case "unary_bwd":
      return `${M}::unary_grad(${UNARY_FNS.indexOf(s.attrs.fn)}, ${a}, ${k}, ${b})`;
    case "binary":
      return `${M}::binary(${BINARY_FNS.indexOf(s.attrs.fn)}, ${a}, ${b})`;
    case "binary_bwd":
      return `${M}::binary_grad(${BINARY_FNS.indexOf(s.attrs.fn)}, ${s.attrs.side}, ${a}, ${b}, ${c})`;
    case "where":
      return `${a} != 0.0f ? ${b} : ${c}`;
    case "silu":
      return `${M}::silu(${a})`;
    case "silu_bwd":
      return `${M}::silu_grad(${a}, ${b})`;
    case "gelu":
      return `${M}::gelu(${a})`;
    case "gelu_bwd":
      return `${M}::gelu_grad(${a}, ${b})`;
    case "reduce_bwd":
      return `${M}::reduce_spread(${REDUCE_FNS.indexOf(s.attrs.fn)}, ${a}, ${s.attrs.C ?? 1})`;
    case "reduce":
      throw new Error("internal: a reduction is the loop's, not a step's");
  }
}

/** The float constant a step takes as its kernel's argument, if any (as the unfused kernel call passes it). */
function constantOf(s: FusedStep): number | undefined {
  switch (s.op) {
    case "fill":
      return s.attrs.value;
    case "scale":
      return s.attrs.s;
    case "unary":
    case "unary_bwd":
      return s.attrs.p ?? 0;
    default:
      return undefined;
  }
}

export function fusedKernelView(n: NodeOf<"fused">, mem: MemoryPlan): FusedKernelView {
  const program = fusedProgram(n.inputs, n.attrs);
  const inputs = n.inputs.map((v) => v.shape);
  const declarations = [
    ...n.inputs.map((v, k) => `const float* x${k} = ${valuePointer(v, mem)}`),
    ...n.outputs.map((v, k) => `float* o${k} = ${valuePointer(v, mem)}`),
  ];
  const body: string[] = [];
  const loop = loopShape(program);
  const last = program.steps.length - 1;
  const reduces = program.reduceC !== undefined;
  program.steps.forEach((s, j) => {
    if (reduces && j === last) return;
    const constant = constantOf(s);
    if (constant !== undefined) declarations.push(`const float k${j} = ${M}::opaque(${cFloat(constant)})`);
    const args = s.args.map((a) => operand(a, program.shapes[j], inputs, program, loop));
    // A reshape computes nothing: its step is the register of the step it views.
    body.push(`const float s${j} = ${s.op === "reshape" ? args[0] : `${M}::kept(${expression(s, args, `k${j}`)})`};`);
  });
  const outputs = n.outputs.map((v, k) => ({ name: `o${k}`, bytes: valueBytes(v) }));
  n.attrs.outs.forEach((step, k) => {
    if (!(reduces && step === last)) body.push(`o${k}[i] = s${step};`);
  });
  const view = {
    name: fusedKernelName(n),
    text: formatNode(n).replace(/\s+/g, " "),
    label: `fused %${n.outputs[0].id} at ${formatLoc(n.loc)}`,
  };
  if (!reduces) return { ...view, declarations, outputs, n: program.n, ...loop, body };
  const reduce = program.steps[last] as FusedStepOf<"reduce">;
  const out = `o${n.attrs.outs.indexOf(last)}`;
  if (!n.attrs.outs.includes(last)) throw new Error("internal: a fused reduction's value must be an output");
  return {
    ...view,
    declarations,
    outputs,
    n: program.n,
    ...loop,
    reduce: { fn: REDUCE_FNS.indexOf(reduce.attrs.fn), out, term: `s${reduce.args[0].index}` },
    body,
  };
}
