// Saved activations in host memory: the values a checkpoint region (a block) computes in the forward
// and the backward reads again are copied to the host while the forward runs, and copied back before the
// backward needs them, so between the two phases they take no device memory. The other answer to the
// same problem is recomputing the block (recompute.ts); `--checkpoint auto` weighs the two per block
// (plan/strategies/activation_moves.ts). For each moved value:
// - a `copy_d2h` right after its producer, into its own host buffer (`act.<region>.<k>`), which the memory
//   plan places in the host region beside any offloaded model data; a `wait` on it (which also reads the
//   device value, so the planner keeps that storage until the copy is done) after its last forward reader,
//   or, with a lookahead k, not before the forward reaches the block k further on, so the copy overlaps
//   the compute in between;
// - in the backward, a `chunk_h2d` of the host buffer into a device buffer, issued right before the first
//   reader (lookahead 0) or when the backward reaches the block k further on (it runs backwards, so that
//   is earlier), a `wait` before the first reader, and a `chunk_view` of the buffer in the shape each
//   reader read (the backward may read the value through reshapes).
// The copy ops and the transfer engine are the ones offloaded model data uses. Copies are exact, so the
// step computes bitwise what it computes with the activations kept.
import { GraphBuilder } from "../builder.ts";
import { opDef } from "../ops.ts";
import { groupBy } from "./offload.ts";
import { type Graph, type Node, type Value, formatShape, numel } from "../types.ts";

export interface ActivationMoves {
  /** Checkpoint regions whose saved values live in host memory between the forward and the backward. */
  regions: ReadonlySet<number>;
  /** How many regions ahead of its use a copy is waited for (out) or started (in); 0: at the use. */
  lookahead: number;
}

/** A value the backward reads that moves, with where its copies and waits go. */
interface Moved {
  value: Value;
  region: number;
  name: string;
  /** Node position before which the copy out is waited for, and before which the copy in starts. */
  waitOut: number;
  startIn: number;
  /** Node position of the first backward reader: the copy in is waited for right before it. */
  firstUse: number;
}

/** The value whose storage a value is: through reshapes, which are views. */
function storageRoot(v: Value): Value {
  while (v.producer.op === "reshape") v = v.producer.inputs[0];
  return v;
}

/** Forward values of the moved regions that the backward reads, each with its copy positions. */
export function movedActivations(g: Graph, moves: ActivationMoves): Moved[] {
  const firstBackward = g.nodes.findIndex((n) => n.phase !== "forward");
  if (firstBackward < 0 || moves.regions.size === 0) return [];
  const forwardStart = new Map<number, number>(); // region -> position of its first forward node
  const backwardStart = new Map<number, number>(); // region -> position of the first backward node for it
  const lastForwardUse = new Map<number, number>(); // root value id -> last forward reader
  const firstBackwardUse = new Map<number, number>();
  const roots = new Map<number, Value>();
  const position = new Map(g.nodes.map((n, i) => [n.id, i]));
  const regionOf = (v: Value) => (v.producer.phase === "forward" ? v.producer.attrs.ckpt : undefined);
  g.nodes.forEach((n, i) => {
    const region = n.attrs.ckpt;
    if (n.phase === "forward") {
      if (region !== undefined && !forwardStart.has(region)) forwardStart.set(region, i);
      for (const v of n.inputs) lastForwardUse.set(storageRoot(v).id, i);
      return;
    }
    // Recomputed nodes carry their region; so do the forward values the backward reads.
    if (region !== undefined && !backwardStart.has(region)) backwardStart.set(region, i);
    for (const v of n.inputs) {
      const root = storageRoot(v);
      const r = regionOf(root);
      if (r === undefined) continue;
      if (!backwardStart.has(r)) backwardStart.set(r, i);
      if (!firstBackwardUse.has(root.id)) firstBackwardUse.set(root.id, i);
      roots.set(root.id, root);
    }
  });
  const results = new Set(Object.values(g.named).map((v) => v.id));
  const k = moves.lookahead;
  const counts = new Map<number, number>();
  const moved: Moved[] = [];
  for (const root of [...roots.values()].sort((a, b) => a.id - b.id)) {
    const region = regionOf(root)!;
    // Only values that own their storage and are plain f32 temporaries: program results stay, and a
    // value that is a view of another's storage (an aliasing op's output) is that other value's to move.
    if (!moves.regions.has(region) || root.dtype !== "f32" || results.has(root.id)) continue;
    if (Object.keys(opDef(root.producer.op).aliases ?? {}).length > 0) continue;
    const produced = position.get(root.producer.id)!;
    const lastUse = Math.max(produced, lastForwardUse.get(root.id) ?? produced);
    const ahead = k === 0 ? lastUse + 1 : Math.max(lastUse + 1, forwardStart.get(region + k) ?? firstBackward);
    const firstUse = firstBackwardUse.get(root.id)!;
    const anchor = k === 0 ? firstUse : Math.min(firstUse, backwardStart.get(region + k) ?? firstBackward);
    const index = counts.get(region) ?? 0;
    counts.set(region, index + 1);
    moved.push({
      value: root,
      region,
      name: `act.${region}.${index}`,
      waitOut: Math.min(ahead, firstBackward),
      startIn: Math.max(anchor, firstBackward),
      firstUse,
    });
  }
  return moved;
}

export function offloadActivations(g: Graph, moves: ActivationMoves): Graph {
  const moved = movedActivations(g, moves);
  if (moved.length === 0) return g;
  const byValue = new Map(moved.map((m) => [m.value.id, m]));
  const waitsOut = groupBy(moved, (m) => m.waitOut);
  const startsIn = groupBy(moved, (m) => m.startIn);
  const waitsIn = groupBy(moved, (m) => m.firstUse);

  const b = new GraphBuilder();
  const copy = new Map<number, Value>(); // old value id -> value in the new graph
  const outbound = new Map<number, Value>(); // moved value id -> its host copy (in flight)
  const onHost = new Map<number, Value>(); // moved value id -> its host copy, waited for
  const inbound = new Map<number, Value>(); // moved value id -> its device copy (in flight)
  const back = new Map<number, Value>(); // moved value id -> its device copy, waited for
  const views = new Map<string, Value>(); // moved value id + shape -> the view the backward reads

  const backwardInput = (n: Node, v: Value): Value => {
    const root = storageRoot(v);
    if (!back.has(root.id)) return copy.get(v.id)!;
    const key = `${root.id}:${formatShape(v.shape)}`;
    if (!views.has(key))
      views.set(key, b.value("chunk_view", [back.get(root.id)!], { offset: 0, shape: v.shape, name: byValue.get(root.id)!.name }, n.loc));
    return views.get(key)!;
  };

  g.nodes.forEach((n, i) => {
    b.phase = "forward";
    for (const m of waitsOut.get(i) ?? [])
      onHost.set(m.value.id, b.value("wait", [outbound.get(m.value.id)!, copy.get(m.value.id)!], {}, m.value.producer.loc));
    b.phase = n.phase;
    for (const m of startsIn.get(i) ?? [])
      inbound.set(
        m.value.id,
        b.value("chunk_h2d", [onHost.get(m.value.id)!], { activation: m.name, elements: numel(m.value.shape) }, n.loc, {
          payload: "activation",
        }),
      );
    for (const m of waitsIn.get(i) ?? []) back.set(m.value.id, b.value("wait", [inbound.get(m.value.id)!], {}, n.loc));
    const inputs = n.inputs.map((v) => (n.phase === "forward" ? copy.get(v.id)! : backwardInput(n, v)));
    const made = b.copy(n, inputs);
    n.outputs.forEach((out, k) => {
      copy.set(out.id, made.outputs[k]);
      const m = byValue.get(out.id);
      if (m) outbound.set(out.id, b.value("copy_d2h", [made.outputs[k]], { name: m.name }, n.loc, { payload: "activation" }));
    });
  });
  b.params.push(...g.params.map((p) => ({ ...p, value: copy.get(p.value.id)! })));
  for (const [k, v] of Object.entries(g.named)) b.named[k] = copy.get(v.id)!;
  for (const [k, v] of Object.entries(g.grads)) b.grads[k] = copy.get(v.id)!;
  return b.build();
}
