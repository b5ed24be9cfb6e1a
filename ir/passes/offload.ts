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
// At ZeRO 3 (gather_params.ts) a rank's model data of a chunk is its shard: the shard is what is copied
// to the device (each gather reads the copy), its gradient shard is what goes back, and the chunk's
// update (zero_adamw) runs on the host, so host memory per rank falls as 1/ranks too.
import { GraphBuilder } from "../builder.ts";
import { opDef } from "../ops.ts";
import { type Graph, type Node, type Phase, type Value, numel, valueBytes, valueIdBound } from "../types.ts";
import { type ChunkLayout, type ZeroSharding, shardGradKey } from "./chunks.ts";

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
const ON_HOST = { placement: "host" } as const;

/** A chunk's model data as the graph holds it: a parameter (its name, at its offset in the chunk), or a ZeRO 3 shard. */
interface Home {
  value: Value;
  name: string;
  chunk: number;
  offset: number;
}

/** The values that hold each chunk's model data, in the chunk's order (a chunk's copy starts at its first). */
function homes(g: Graph, chunks: ChunkLayout, zero?: ZeroSharding): Home[] {
  if (zero?.stage === 3)
    return g.nodes
      .filter((n) => n.op === "zero_param_shard")
      .map((n) => ({ value: n.outputs[0], name: n.attrs.name as string, chunk: n.attrs.chunk as number, offset: 0 }));
  const byName = new Map(g.params.map((p) => [p.name, p.value]));
  return chunks.chunks.flatMap((c) =>
    c.params.map((name) => ({ value: byName.get(name)!, name, chunk: c.index, offset: c.offsets.get(name)! })),
  );
}

export function offloadModelData(g: Graph, chunks: ChunkLayout, schedule: OffloadSchedule, zero?: ZeroSharding): Graph {
  const all = homes(g, chunks, zero);
  const home = new Map(all.map((h) => [h.value.id, h]));
  // Each chunk's home values in its order: what its copy to the device reads.
  const homesOf = groupBy(all, (h) => h.chunk);
  // Value id -> the offloaded chunk it is model data of (an array: every input of every node asks).
  const valueBound = valueIdBound(g);
  const chunkOfValue = new Array<number | undefined>(valueBound);
  for (const h of all) if (!schedule.resident.has(h.chunk)) chunkOfValue[h.value.id] = h.chunk;
  const offloadedChunk = (valueId: number): number | undefined => chunkOfValue[valueId];
  // One load of a chunk serves a phase, or the whole step when its forward copy is kept: as a number,
  // chunk * 4 + (0 for the step, else 1 + the phase's index).
  const loadKey = (n: Node, chunk: number) => 4 * chunk + (schedule.keep.has(chunk) ? 0 : 1 + PHASES.indexOf(n.phase));
  const onHost = (n: Node) =>
    opDef(n.op).hostable === true && n.inputs.some((v) => offloadedChunk(v.id) !== undefined || hostGradOf[v.id] !== undefined);

  // Gradients of offloaded model data, which go to the host: value id -> parameter name (at ZeRO 3,
  // the chunk's gradient shard's key; the parameters' own gradients are not the update's).
  const hostGradOf = new Array<string | undefined>(valueBound);
  if (zero?.stage === 3) {
    for (const c of chunks.chunks) {
      const grad = g.grads[shardGradKey(c.index)]; // none in the inference program
      if (grad && !schedule.resident.has(c.index)) hostGradOf[grad.id] = shardGradKey(c.index);
    }
  } else for (const [name, v] of Object.entries(g.grads)) if (!schedule.resident.has(chunks.chunkOf.get(name)!)) hostGradOf[v.id] = name;

  // Whether each node runs on the host: asked of every node twice, so answered once.
  const hostNodes = new Uint8Array(g.nodes.length);
  for (let i = 0; i < g.nodes.length; i++) if (onHost(g.nodes[i])) hostNodes[i] = 1;
  const loads = findLoads(g, offloadedChunk, loadKey, hostNodes);
  for (let i = 0; i < loads.length; i++) loads[i].start = i >= schedule.lookahead ? loads[i - schedule.lookahead].firstUse : 0;
  // Loads are in program order of their first readers, so their starts and waits are in program order
  // too: the loop below walks both lists alongside the nodes.
  let nextStart = 0;
  let nextWait = 0;

  const b = new GraphBuilder();
  const copy = new Array<Value>(valueBound); // old value id -> value in the new graph
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
      const { name, offset } = home.get(v.id)!;
      views.set(viewKey, b.value("chunk_view", [ready.get(key)!], { offset, shape: v.shape, name }, n.loc));
    }
    return views.get(viewKey)!;
  };

  // Model data first: it is leaves, and a chunk's copy may start before the node that declares them.
  const isHome = (n: Node) => n.op === "param" || n.op === "zero_param_shard";
  for (const n of g.nodes) if (isHome(n)) copy[n.outputs[0].id] = b.copy(n, []).outputs[0];
  // Plain loops, no closure or array per node: a plan search runs this pass on every schedule it probes.
  for (let i = 0; i < g.nodes.length; i++) {
    const n = g.nodes[i];
    b.phase = n.phase;
    for (; nextStart < loads.length && loads[nextStart].start === i; nextStart++) {
      const l = loads[nextStart];
      const hostData = homesOf.get(l.chunk)!.map((h) => copy[h.value.id]);
      const elements = zero?.stage === 3 ? numel(hostData[0].shape) : chunks.chunks[l.chunk].bytes / 4;
      inFlight.set(l.key, b.value("chunk_h2d", hostData, { chunk: l.chunk, elements }, n.loc, { payload: "model" }));
    }
    for (; nextWait < loads.length && loads[nextWait].firstUse === i; nextWait++) {
      const l = loads[nextWait];
      ready.set(l.key, b.value("wait", [inFlight.get(l.key)!], {}, n.loc));
    }
    if (isHome(n)) continue;
    const host = hostNodes[i] === 1;
    if (n.op === "grad_norm") waitD2h(Infinity);
    const inputs = new Array<Value>(n.inputs.length);
    for (let k = 0; k < n.inputs.length; k++) {
      const v = n.inputs[k];
      const chunk = host ? undefined : offloadedChunk(v.id);
      inputs[k] = host ? (hostGrad.get(v.id) ?? copy[v.id]) : chunk === undefined ? copy[v.id] : paramInput(n, v, chunk);
    }
    const made = host ? b.copy(n, inputs, ON_HOST) : b.copy(n, inputs);
    for (let k = 0; k < n.outputs.length; k++) {
      const out = n.outputs[k];
      const device = made.outputs[k];
      copy[out.id] = device;
      const name = hostGradOf[out.id];
      if (name === undefined) continue;
      const hostCopy = b.value("copy_d2h", [device], { name: `grad.${name}` }, n.loc, { payload: "model" });
      hostGrad.set(out.id, hostCopy);
      gradBytes += valueBytes(device);
      pendingD2h.push({ host: hostCopy, device, due: gradBytes + schedule.lookahead * valueBytes(device) });
      waitD2h(gradBytes);
    }
  }
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
  hostNodes: Uint8Array,
): Load[] {
  const loads: Load[] = [];
  const seen = new Set<number>();
  g.nodes.forEach((n, i) => {
    if (hostNodes[i] === 1) return;
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
