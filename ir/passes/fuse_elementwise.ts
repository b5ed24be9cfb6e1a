// Fuses runs of elementwise nodes, and a reduction that ends one, into one `fused` node whose kernel
// codegen generates (codegen/fused_kernel.ts): one loop instead of one kernel per op, and the values
// the group makes and uses itself are never written to memory. RMSNorm's square and mean become one
// kernel, its add of eps and rsqrt another, its two products a third.
//
// A group is a run of neighbouring nodes in execution order, so the fused node can stand where the run
// stood: every value it reads is made before the run, and every reader outside it comes after. Members
// share a phase and checkpoint region (recompute and the activation moves handle regions whole), run
// on the device, and cover the same elements; a fill whose readers are all members becomes a constant.
// Only values read outside the group (or named, or a parameter's gradient, or read by nothing) are
// outputs. A reshape of a member joins the run: a value is contiguous, so it is the same elements
// under another shape (GPT-2's bias add and GELU sit on either side of one). One whose value is read
// outside stays a view, of its source step's output, after the fused node; so does one that ends the
// run. Other views, collectives, copies and every other op end a run. Each step computes what its op's
// kernel computes, in the same order, so losses are bitwise those of the unfused graph.
import { GraphBuilder } from "../builder.ts";
import { type FusableOp, type FusedStep, type Operand, formatProgram, isFusableOp } from "../fused_program.ts";
import type { NodeMarks } from "../op_attrs.ts";
import { type Graph, type Node, type Value, numel, valueIdBound } from "../types.ts";

/** The elements a node covers as a step: its output's, or for a reduction its input's; undefined for a constant. */
function covers(n: Node): number | undefined {
  if (n.op === "fill") return undefined;
  return numel((n.op === "reduce" ? n.inputs[0] : n.outputs[0]).shape);
}

function canFuse(n: Node): boolean {
  if (!isFusableOp(n.op) || n.placement !== "device" || n.outputs.length !== 1) return false;
  // reduce_bwd of max reads whole rows of x and y: not one element at a time.
  return n.op !== "reduce_bwd" || n.inputs.length === 1;
}

const sameMarks = (a: Node, b: Node) =>
  a.phase === b.phase &&
  (a.attrs as NodeMarks).ckpt === (b.attrs as NodeMarks).ckpt &&
  (a.attrs as NodeMarks).recompute === (b.attrs as NodeMarks).recompute;

/** A run being gathered: its nodes in order, and the elements its non-constant steps cover. */
interface Run {
  nodes: Node[];
  n?: number;
  /** Ended by a reduction: nothing more can join. */
  closed: boolean;
}

/** Whether `n` may join `run`: its marks, its size, and for a reduction or a reshape, that it reads a member. */
function joins(run: Run, n: Node, memberOf: (v: Value) => boolean): boolean {
  if (run.closed || !sameMarks(run.nodes[0], n)) return false;
  const size = covers(n);
  if (size !== undefined && run.n !== undefined && size !== run.n) return false;
  return (n.op !== "reduce" && n.op !== "reshape") || (memberOf(n.inputs[0]) && n.inputs[0].producer.op !== "fill");
}

/** Every node of `g` that reads each value, by value id; named values and gradients count as read outside. */
function readersOf(g: Graph): { readers: Node[][]; kept: boolean[] } {
  const bound = valueIdBound(g);
  const readers: Node[][] = Array.from({ length: bound }, () => []);
  const kept = new Array<boolean>(bound).fill(false);
  for (const n of g.nodes) for (const v of n.inputs) readers[v.id].push(n);
  for (const v of [...Object.values(g.named), ...Object.values(g.grads), ...g.params.map((p) => p.value)]) kept[v.id] = true;
  return { readers, kept };
}

export function fuseElementwise(g: Graph): Graph {
  const { readers, kept } = readersOf(g);
  const b = new GraphBuilder();
  const copy: Value[] = []; // old value id -> value in the new graph
  const emit = (n: Node) => {
    b.phase = n.phase;
    const made = b.copy(
      n,
      n.inputs.map((v) => copy[v.id]),
    );
    n.outputs.forEach((v, k) => (copy[v.id] = made.outputs[k]));
  };

  let run: Run = { nodes: [], closed: false };
  const flush = () => {
    // Reshapes at the end of a run fuse with nothing: they stay views, after the group.
    const trailing: Node[] = [];
    while (run.nodes.at(-1)?.op === "reshape") trailing.unshift(run.nodes.pop()!);
    const members = new Set(run.nodes.map((n) => n.id));
    const readOutside = (v: Value) => kept[v.id] || readers[v.id].some((r) => !members.has(r.id));
    // A constant read outside the run stays a node of its own (it reads nothing, so it may go first).
    const escaping = run.nodes.filter((n) => n.op === "fill" && readOutside(n.outputs[0]));
    for (const n of escaping) emit(n);
    const group = run.nodes.filter((n) => !escaping.includes(n));
    // What the group must store: values read outside it, and values nothing reads, which the unfused
    // graph stored too (so every step's value is used, and a reduction's, which ends a group, is stored).
    const stored = (v: Value) => readOutside(v) || readers[v.id].length === 0;
    const kernels = group.filter((n) => n.op !== "reshape");
    if (kernels.length >= 2 && kernels.some((n) => n.op !== "fill")) fuse(b, group, stored, copy);
    else group.forEach(emit);
    trailing.forEach(emit);
    run = { nodes: [], closed: false };
  };

  for (const n of g.nodes) {
    const inRun = (v: Value) => run.nodes.includes(v.producer);
    if (canFuse(n) && run.nodes.length > 0 && joins(run, n, inRun)) run.nodes.push(n);
    else {
      flush();
      // A reduction can only end a run, and a reshape only view a member: alone, they have nothing to fuse with.
      if (canFuse(n) && n.op !== "reduce" && n.op !== "reshape") run.nodes.push(n);
      else emit(n);
    }
    if (!run.nodes.includes(n)) continue;
    run.n ??= covers(n);
    run.closed = n.op === "reduce";
  }
  flush();

  b.params.push(...g.params.map((p) => ({ ...p, value: copy[p.value.id] })));
  for (const [k, v] of Object.entries(g.named)) b.named[k] = copy[v.id];
  for (const [k, v] of Object.entries(g.grads)) b.grads[k] = copy[v.id];
  return b.build();
}

/**
 * Adds one fused node for `group` and maps the values it stores to the node's outputs. A reshape step
 * stores nothing: where its value is read outside, the step it views is stored, and a reshape node after
 * the fused node gives the value, as a view of that output. A reshape no member reads is no step at all
 * (a step's value is always used: the generated kernels are built with warnings as errors).
 */
function fuse(b: GraphBuilder, group: readonly Node[], stored: (v: Value) => boolean, copy: Value[]): void {
  const members = new Set(group);
  const sourceOf = (v: Value): Value => (v.producer.op === "reshape" && members.has(v.producer) ? sourceOf(v.producer.inputs[0]) : v);
  const stepNodes = group.filter((n) => n.op !== "reshape" || group.some((m) => m.inputs.includes(n.outputs[0])));
  const inputs: Value[] = [];
  const stepOf = new Map<Value, number>();
  const steps: FusedStep[] = stepNodes.map((n, i) => {
    const args = n.inputs.map((v): Operand => {
      const step = stepOf.get(v);
      if (step !== undefined) return { from: "step", index: step };
      if (!inputs.includes(v)) inputs.push(v);
      return { from: "input", index: inputs.indexOf(v) };
    });
    stepOf.set(n.outputs[0], i);
    const { ckpt: _ckpt, recompute: _recompute, ...attrs } = n.attrs as NodeMarks & Record<string, unknown>;
    return { op: n.op as FusableOp, attrs, args } as FusedStep;
  });
  const views = group.filter((n) => n.op === "reshape" && stored(n.outputs[0]));
  const storedValues = new Set(group.flatMap((n) => (stored(n.outputs[0]) ? [sourceOf(n.outputs[0])] : [])));
  const outs = stepNodes.flatMap((n, i) => (storedValues.has(n.outputs[0]) ? [i] : []));
  const first = group.find((n) => n.op !== "fill")!;
  const { ckpt, recompute } = first.attrs as NodeMarks;
  const attrs = { program: formatProgram(steps), outs, ...(ckpt !== undefined && { ckpt }), ...(recompute && { recompute }) };
  b.phase = first.phase;
  const node = b.add(
    "fused",
    inputs.map((v) => copy[v.id]),
    attrs,
    first.loc,
  );
  outs.forEach((step, k) => (copy[stepNodes[step].outputs[0].id] = node.outputs[k]));
  for (const n of views) {
    b.phase = n.phase;
    copy[n.outputs[0].id] = b.copy(n, [copy[sourceOf(n.outputs[0]).id]]).outputs[0];
  }
}
