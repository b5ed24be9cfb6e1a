// What the offload pass (offload.ts) knows of a graph before any schedule: where each chunk's model
// data and gradients are, which nodes could run on the host, and which inputs read model data. A plan
// search runs the pass on one graph for every schedule it probes, so these are built once per graph
// (and chunk layout) and each probe only filters them by its resident chunks.
import { opDef } from "../ops.ts";
import { type Graph, type Value, valueIdBound } from "../types.ts";
import { type ChunkLayout, type ZeroSharding, shardGradKey } from "./chunks.ts";

/** A chunk's model data as the graph holds it: a parameter (its name, at its offset in the chunk), or a ZeRO 3 shard. */
export interface Home {
  value: Value;
  name: string;
  chunk: number;
  offset: number;
}

export interface OffloadTables {
  valueBound: number;
  /** Value id -> the Home it is (model data of some chunk). */
  home: Map<number, Home>;
  /** Each chunk's home values in its order: what its copy to the device reads. */
  homesOf: Map<number, Home[]>;
  /** Value id -> the chunk it is model data of, or -1: an array, as every input of every node asks. */
  homeChunk: Int32Array;
  /** The gradients of model data, in the graph's order (at ZeRO 3, each chunk's gradient shard). */
  grads: { id: number; name: string; chunk: number }[];
  /** Nodes of a hostable op, by index: the ones that run on the host when they read offloaded data. */
  hostable: number[];
  /** Every (node index, chunk) where a node's input is a chunk's model data, in program and input order. */
  homeReads: { node: number; chunk: number }[];
}

const cache = new WeakMap<Graph, { chunks: ChunkLayout; zero?: ZeroSharding; tables: OffloadTables }>();

/** The tables of `g` under `chunks` and `zero`, built on the first call for that graph and layout. */
export function offloadTables(g: Graph, chunks: ChunkLayout, zero?: ZeroSharding): OffloadTables {
  const known = cache.get(g);
  if (known && known.chunks === chunks && known.zero === zero) return known.tables;
  const tables = buildTables(g, chunks, zero);
  cache.set(g, { chunks, zero, tables });
  return tables;
}

function buildTables(g: Graph, chunks: ChunkLayout, zero?: ZeroSharding): OffloadTables {
  const all = homes(g, chunks, zero);
  const valueBound = valueIdBound(g);
  const homeChunk = new Int32Array(valueBound).fill(-1);
  for (const h of all) homeChunk[h.value.id] = h.chunk;
  const grads: OffloadTables["grads"] = [];
  if (zero?.stage === 3) {
    for (const c of chunks.chunks) {
      const grad = g.grads[shardGradKey(c.index)]; // none in the inference program
      if (grad) grads.push({ id: grad.id, name: shardGradKey(c.index), chunk: c.index });
    }
  } else for (const [name, v] of Object.entries(g.grads)) grads.push({ id: v.id, name, chunk: chunks.chunkOf.get(name)! });
  const hostable: number[] = [];
  const homeReads: OffloadTables["homeReads"] = [];
  for (let i = 0; i < g.nodes.length; i++) {
    const n = g.nodes[i];
    if (opDef(n.op).hostable === true) hostable.push(i);
    for (const v of n.inputs) if (homeChunk[v.id] >= 0) homeReads.push({ node: i, chunk: homeChunk[v.id] });
  }
  return {
    valueBound,
    home: new Map(all.map((h) => [h.value.id, h])),
    homesOf: byChunk(all),
    homeChunk,
    grads,
    hostable,
    homeReads,
  };
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

/** Homes by chunk, each chunk's in the order of `all`. */
function byChunk(all: readonly Home[]): Map<number, Home[]> {
  const m = new Map<number, Home[]>();
  for (const h of all) {
    const group = m.get(h.chunk);
    if (group) group.push(h);
    else m.set(h.chunk, [h]);
  }
  return m;
}
