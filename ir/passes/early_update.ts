// Applies each parameter's AdamW update as soon as it may run, instead of after the whole backward:
// right after the parameter's gradient is final and its last reader has run (the update is in place,
// so every read of the old value must come first). The gradient then dies at once instead of living
// to the end of the step. Only without gradient clipping: the global norm needs every gradient first.
// Each update reads the same values as before, so the step computes bitwise the same parameters.
// Not under ZeRO: a chunk's update (zero_adamw) needs all of the chunk's gradients, and then a gather.
import type { Graph, Node } from "../types.ts";
import { groupBy } from "./offload.ts";

export function earlyUpdate(g: Graph): Graph {
  if (g.nodes.some((n) => n.op === "grad_norm" || n.op === "zero_adamw")) return g;
  const updates = g.nodes.filter((n) => n.op === "adamw");
  const rest = g.nodes.filter((n) => n.op !== "adamw" && n.op !== "opt_state");
  const moments = new Map<number, Node[]>(); // update node id -> its opt_state nodes
  for (const u of updates)
    moments.set(
      u.id,
      u.inputs.slice(2, 4).map((v) => v.producer),
    );

  // Position in `rest` after which each update may run: after its gradient's producer and after the
  // last other reader of the parameter.
  const position = new Map<Node, number>();
  const lastRead = new Map<number, number>(); // value id -> position of its last reader in `rest`
  rest.forEach((n, i) => {
    position.set(n, i);
    for (const v of n.inputs) lastRead.set(v.id, i);
  });
  const readyAfter = new Map<number, number>();
  for (const u of updates) {
    const [param, grad] = u.inputs;
    readyAfter.set(u.id, Math.max(position.get(grad.producer)!, lastRead.get(param.id) ?? -1));
  }

  // Grouped by position once (in update order within a position), rather than every update tested at
  // every node, which made the pass quadratic in the model's depth.
  const updatesAfter = groupBy(updates, (u) => readyAfter.get(u.id)!);
  const nodes: Node[] = [];
  rest.forEach((n, i) => {
    nodes.push(n);
    for (const u of updatesAfter.get(i) ?? []) nodes.push(...moments.get(u.id)!, u);
  });
  return { ...g, nodes };
}
