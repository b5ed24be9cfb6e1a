// Activation checkpointing as a rewrite: forward nodes chosen for recomputation keep their place in the
// forward, but the backward no longer reads their outputs. Right before the first backward node that
// needs one, clones of the chosen nodes it depends on are inserted (phase backward, attribute
// recompute=true), and the backward reads the clones. The originals' outputs then die in the forward,
// and the clones live only while their part of the backward runs. Same kernels on the same inputs, so
// the gradients are bitwise those of the plain graph.
import { GraphBuilder } from "../builder.ts";
import type { Graph, Node, Value } from "../types.ts";

export type CheckpointMode = "none" | "selective" | "blocks";
export const CHECKPOINT_MODES: readonly CheckpointMode[] = ["none", "selective", "blocks"];

/** Number of checkpoint regions (blocks) the model marked. */
export function regionCount(g: Graph): number {
  const ids = new Set(g.nodes.filter((n) => n.phase === "forward" && n.attrs.ckpt !== undefined).map((n) => n.attrs.ckpt));
  return ids.size;
}

/**
 * Which forward nodes a mode recomputes. Under `blocks`, `regions` limits it to that many regions from
 * region `first` on (all from `first` when undefined): the earliest blocks' activations are the ones kept
 * longest. The regions before `first` are left to another answer (their activations move to the host).
 */
export function recomputedNodes(g: Graph, mode: CheckpointMode, regions?: number, first = 0): Set<number> {
  const chosen = new Set<number>();
  for (const n of g.nodes) {
    if (n.phase !== "forward") continue;
    // selective: the attention core, as Megatron-LM does; blocks: every node of a checkpoint region.
    if (mode === "selective" && n.op === "attention") chosen.add(n.id);
    const region = n.attrs.ckpt;
    if (mode === "blocks" && region !== undefined && region >= first && (regions === undefined || region < first + regions))
      chosen.add(n.id);
  }
  return chosen;
}

/**
 * Values of recomputed nodes that stay stored: under `blocks`, what a region hands to code outside it
 * (the next block's input). These are the checkpoints the recomputation starts from; recomputing them
 * too would redo every earlier block in each block's backward.
 */
function checkpoints(g: Graph, chosen: Set<number>, mode: CheckpointMode): Set<number> {
  const kept = new Set<number>();
  if (mode !== "blocks") return kept;
  for (const n of g.nodes) {
    if (n.phase !== "forward") continue;
    for (const v of n.inputs) if (chosen.has(v.producer.id) && v.producer.attrs.ckpt !== n.attrs.ckpt) kept.add(v.id);
  }
  for (const v of Object.values(g.named)) kept.add(v.id);
  return kept;
}

export function recompute(g: Graph, mode: CheckpointMode, regions?: number, first = 0): Graph {
  const chosen = recomputedNodes(g, mode, regions, first);
  if (chosen.size === 0) return g;
  const kept = checkpoints(g, chosen, mode);
  const b = new GraphBuilder();
  const copy = new Map<number, Value>(); // old value id -> value in the new graph
  const clone = new Map<number, Value>(); // old value id -> its recomputed value in the backward

  const add = (n: Node, inputs: Value[], phase = n.phase, extra = {}) => {
    b.phase = phase;
    return b.copy(n, inputs, { attrs: { ...n.attrs, ...extra } });
  };
  // The recomputed value of `v`, cloning its producer (and what that needs) on first use.
  const recomputed = (v: Value): Value => {
    const p = v.producer;
    if (!chosen.has(p.id) || kept.has(v.id)) return copy.get(v.id)!;
    if (!clone.has(v.id)) {
      const made = add(p, p.inputs.map(recomputed), "backward", { recompute: true });
      p.outputs.forEach((out, k) => clone.set(out.id, made.outputs[k]));
    }
    return clone.get(v.id)!;
  };

  for (const n of g.nodes) {
    const backward = n.phase !== "forward";
    const inputs = n.inputs.map((v) => (backward ? recomputed(v) : copy.get(v.id)!));
    const made = add(n, inputs);
    n.outputs.forEach((out, k) => copy.set(out.id, made.outputs[k]));
  }
  b.params.push(...g.params.map((p) => ({ ...p, value: copy.get(p.value.id)! })));
  for (const [k, v] of Object.entries(g.named)) b.named[k] = copy.get(v.id)!;
  for (const [k, v] of Object.entries(g.grads)) b.grads[k] = copy.get(v.id)!;
  return b.build();
}
