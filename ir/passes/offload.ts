// Model data in host memory, moved chunk by chunk (ir/passes/chunks.ts). Resident chunks stay on the
// device as in an all-resident plan. For every other chunk, parameters, AdamW moments and a host copy of
// each gradient live in the host region, and:
// - each phase (forward, backward) that reads the chunk gets one `chunk_h2d` of it, started `lookahead`
//   loads before the one it serves, so the copy overlaps the compute in between; a `wait` right before
//   the first reader is where compute may use it, through `chunk_view`s. The planner frees the device
//   copy after its last reader, like any temporary. A chunk in `keep` is copied once: its forward copy
//   stays on the device for the backward (the chunks whose next use is nearest are the ones worth keeping,
//   the last ones the forward reads; the search in plan/strategies/offload_schedule.ts chooses how many fit);
// - each final gradient goes back with a `copy_d2h` as soon as it is complete; its device storage lives
//   until a `wait` once later gradients of `lookahead` times its size have been computed (counted in
//   bytes, not gradients: a bias's gradient after a weight's takes no time to compute, and waiting on the
//   weight's copy there would stall the device for the whole copy);
// - AdamW (and the gradient norm) run on the host copies. Host AdamW runs on the transfer engine, queued
//   after the gradient's copy, so it overlaps the device's remaining backward.
// Copies are exact, so the step computes bitwise what the all-resident step computes.
import { GraphBuilder } from "../builder.ts";
import { OPS } from "../ops.ts";
import { type Graph, type Node, type Phase, type Value, valueBytes, valueIdBound } from "../types.ts";
import type { ChunkLayout } from "./chunks.ts";

export interface OffloadSchedule {
  /** Chunks that stay on the device for the whole step. */
  resident: ReadonlySet<number>;
  /**
   * How many loads ahead of its first reader a chunk's copy starts (0: right before it), and for how
   * many times its own bytes of later gradients a gradient's copy back may stay in flight.
   */
  lookahead: number;
  /** Offloaded chunks whose forward copy stays on the device through the backward. */
  keep: ReadonlySet<number>;
}

interface Load {
  chunk: number;
  key: number;
  firstUse: number;
  start: number;
}

const PHASES: readonly Phase[] = ["forward", "backward", "optimizer"];
const NONE: readonly Load[] = [];

export function offloadModelData(g: Graph, chunks: ChunkLayout, schedule: OffloadSchedule): Graph {
  const paramName = new Map(g.params.map((p) => [p.value.id, p.name]));
  const paramValue = new Map(g.params.map((p) => [p.name, p.value.id]));
  // Value id -> the offloaded chunk it is a parameter of (an array: every input of every node asks).
  const valueBound = valueIdBound(g);
  const chunkOfValue = new Array<number | undefined>(valueBound);
  for (const p of g.params) {
    const c = chunks.chunkOf.get(p.name)!;
    if (!schedule.resident.has(c)) chunkOfValue[p.value.id] = c;
  }
  const offloadedChunk = (valueId: number): number | undefined => chunkOfValue[valueId];
  // One load of a chunk serves a phase, or the whole step when its forward copy is kept: as a number,
  // chunk * 4 + (0 for the step, else 1 + the phase's index).
  const loadKey = (n: Node, chunk: number) => 4 * chunk + (schedule.keep.has(chunk) ? 0 : 1 + PHASES.indexOf(n.phase));
  const onHost = (n: Node) =>
    OPS[n.op].hostable === true && n.inputs.some((v) => offloadedChunk(v.id) !== undefined || hostGradOf[v.id] !== undefined);

  // Gradients of offloaded parameters, which go to the host: value id -> parameter name.
  const hostGradOf = new Array<string | undefined>(valueBound);
  for (const [name, v] of Object.entries(g.grads)) if (!schedule.resident.has(chunks.chunkOf.get(name)!)) hostGradOf[v.id] = name;

  const loads = findLoads(g, offloadedChunk, loadKey, onHost);
  loads.forEach((l, i) => (l.start = i >= schedule.lookahead ? loads[i - schedule.lookahead].firstUse : 0));
  const startsAt = groupBy(loads, (l) => l.start);
  const waitsAt = groupBy(loads, (l) => l.firstUse);

  const b = new GraphBuilder();
  const copy = new Array<Value>(valueIdBound(g)); // old value id -> value in the new graph
  const inFlight = new Map<number, Value>(); // load key -> chunk being copied
  const ready = new Map<number, Value>(); // load key -> waited chunk on the device
  const views = new Map<number, Value>(); // load key * valueBound + param value id -> view
  const hostGrad = new Map<number, Value>(); // old gradient value id -> its host copy
  const pendingD2h: { host: Value; device: Value; due: number }[] = [];
  let gradBytes = 0; // of gradients copied back so far

  const waitD2h = (upTo: number) => {
    while (pendingD2h.length > 0 && pendingD2h[0].due <= upTo) {
      const { host, device } = pendingD2h.shift()!;
      b.value("wait", [host, device], {}, host.producer.loc);
    }
  };
  const paramInput = (n: Node, v: Value, chunk: number): Value => {
    const key = loadKey(n, chunk);
    const viewKey = key * valueBound + v.id;
    if (!views.has(viewKey)) {
      const name = paramName.get(v.id)!;
      const offset = chunks.chunks[chunk].offsets.get(name)!;
      views.set(viewKey, b.value("chunk_view", [ready.get(key)!], { offset, shape: v.shape, name }, n.loc));
    }
    return views.get(viewKey)!;
  };

  // Parameters first: they are leaves, and a chunk's copy may start before the node that declares them.
  for (const n of g.nodes) if (n.op === "param") copy[n.outputs[0].id] = b.value("param", [], n.attrs, n.loc);
  g.nodes.forEach((n, i) => {
    b.phase = n.phase;
    for (const l of startsAt.get(i) ?? NONE) {
      const c = chunks.chunks[l.chunk];
      const hostParams = c.params.map((name) => copy[paramValue.get(name)!]);
      inFlight.set(l.key, b.value("chunk_h2d", hostParams, { chunk: l.chunk, elements: c.bytes / 4 }, n.loc, { payload: "model" }));
    }
    for (const l of waitsAt.get(i) ?? NONE) ready.set(l.key, b.value("wait", [inFlight.get(l.key)!], {}, n.loc));
    const host = onHost(n);
    if (n.op === "grad_norm") waitD2h(Infinity);
    const inputs = n.inputs.map((v) => {
      const chunk = offloadedChunk(v.id);
      if (host) return hostGrad.get(v.id) ?? copy[v.id];
      return chunk === undefined ? copy[v.id] : paramInput(n, v, chunk);
    });
    if (n.op === "param") return;
    const made = b.copy(n, inputs, { placement: host ? "host" : n.placement });
    n.outputs.forEach((out, k) => {
      copy[out.id] = made.outputs[k];
      const name = hostGradOf[out.id];
      if (name === undefined) return;
      const device = made.outputs[k];
      const hostCopy = b.value("copy_d2h", [device], { name: `grad.${name}` }, n.loc, { payload: "model" });
      hostGrad.set(out.id, hostCopy);
      gradBytes += valueBytes(device);
      pendingD2h.push({ host: hostCopy, device, due: gradBytes + schedule.lookahead * valueBytes(device) });
      waitD2h(gradBytes);
    });
  });
  waitD2h(Infinity);
  b.params.push(...g.params.map((p) => ({ ...p, value: copy[p.value.id] })));
  for (const [k, v] of Object.entries(g.named)) b.named[k] = copy[v.id];
  for (const [k, v] of Object.entries(g.grads)) b.grads[k] = copy[v.id];
  return b.build();
}

/** Each (phase, chunk) that needs a copy, at the position of its first reader, in program order. */
function findLoads(
  g: Graph,
  offloadedChunk: (id: number) => number | undefined,
  loadKey: (n: Node, chunk: number) => number,
  onHost: (n: Node) => boolean,
): Load[] {
  const loads: Load[] = [];
  const seen = new Set<number>();
  g.nodes.forEach((n, i) => {
    if (onHost(n)) return;
    for (const v of n.inputs) {
      const chunk = offloadedChunk(v.id);
      if (chunk === undefined) continue;
      const key = loadKey(n, chunk);
      if (seen.has(key)) continue;
      seen.add(key);
      loads.push({ chunk, key, firstUse: i, start: i });
    }
  });
  return loads;
}

/** xs by key, each group in the order of xs. */
export function groupBy<T>(xs: readonly T[], key: (x: T) => number): Map<number, T[]> {
  const m = new Map<number, T[]>();
  for (const x of xs) {
    const group = m.get(key(x));
    if (group) group.push(x);
    else m.set(key(x), [x]);
  }
  return m;
}
