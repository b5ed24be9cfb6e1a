// What elementwise fusion saves in a training graph, counted from the graph alone: the kernels a step
// launches, the bytes the elementwise nodes (and fused ones) read and write, and for the fused nodes
// what their steps would have launched and moved as nodes of their own. `stow plan` reports it; the
// tests hold a fused plan's counts against the unfused plan's.
import { fusedProgram, runsKernel } from "../ops.ts";
import { isFusableOp } from "../fused_program.ts";
import { type Graph, type Node, type NodeOf, numel, valueBytes } from "../types.ts";

export interface FusionSavings {
  /** Fused nodes. */
  groups: number;
  /** Nodes that launch a kernel (every node but sources and views). */
  kernels: number;
  /** Kernels the fused nodes stand for beyond one each. */
  kernelsSaved: number;
  /** Bytes read and written by elementwise nodes, fused ones included: each distinct input once, each output once. */
  elementwiseBytes: number;
  /** What the fused nodes' steps would have read and written as nodes, less what the fused nodes do. */
  bytesSaved: number;
}

function traffic(n: Node): number {
  return [...new Set(n.inputs)].reduce((s, v) => s + valueBytes(v), 0) + n.outputs.reduce((s, v) => s + valueBytes(v), 0);
}

/** A fused node's steps as separate nodes would move them: each step's distinct operands and its value (a reshape moves nothing). */
function unfusedTraffic(n: NodeOf<"fused">): number {
  const program = fusedProgram(n.inputs, n.attrs);
  const bytesOf = (shape: readonly number[]) => numel(shape) * 4;
  return program.steps.reduce((sum, s, i) => {
    if (!runsKernel(s.op)) return sum;
    const operands = new Set(s.args.map((a) => `${a.from}${a.index}`));
    const read = [...operands].reduce((t, key) => {
      const index = Number(key.replace(/^\D+/, ""));
      return t + (key.startsWith("input") ? valueBytes(n.inputs[index]) : bytesOf(program.shapes[index]));
    }, 0);
    return sum + read + bytesOf(program.shapes[i]);
  }, 0);
}

export function fusionSavings(g: Graph): FusionSavings {
  const savings: FusionSavings = { groups: 0, kernels: 0, kernelsSaved: 0, elementwiseBytes: 0, bytesSaved: 0 };
  for (const n of g.nodes) {
    if (runsKernel(n.op)) savings.kernels++;
    if (n.op === "fused") {
      const steps = fusedProgram(n.inputs, n.attrs).steps.filter((s) => runsKernel(s.op)).length;
      savings.groups++;
      savings.kernelsSaved += steps - 1;
      savings.bytesSaved += unfusedTraffic(n) - traffic(n);
    }
    if (n.op === "fused" || (isFusableOp(n.op) && runsKernel(n.op))) savings.elementwiseBytes += traffic(n);
  }
  return savings;
}
