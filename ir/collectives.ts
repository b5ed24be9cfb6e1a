// The collectives of a tensor-parallel program and the bytes each moves: the size of the whole tensor
// it combines (an all_reduce's buffer, an all_gather's output, a reduce_scatter's input, a broadcast's
// buffer). The runtime's collective kernels count the same (runtime/cpu/kernels_tp.cpp), so a run can be
// checked against the plan. Which ops are collectives is the registry's kind.
import { opKind } from "./ops.ts";
import { type Graph, type Node, valueBytes } from "./types.ts";

export interface Collective {
  node: Node;
  bytes: number;
}

export function collectives(g: Graph): Collective[] {
  return g.nodes.filter((n) => opKind(n.op) === "collective").map((node) => ({ node, bytes: collectiveBytes(node) }));
}

/** The bytes one collective node moves, as the runtime counts them. */
export function collectiveBytes(node: Node): number {
  // A ZeRO gather moves a whole chunk, padding included.
  return node.op === "zero_gather"
    ? 4 * node.attrs.ranks * node.attrs.shard
    : Math.max(valueBytes(node.inputs[0]), valueBytes(node.outputs[0]));
}
