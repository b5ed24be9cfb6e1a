// Chunks: the unit in which offloaded model data moves. Parameters are packed, in the order the forward
// first reads them, into chunks of at most `capacity` bytes, as Colossal-AI's Gemini and PatrickStar do;
// a parameter never straddles two chunks, so the capacity must hold the largest one. A chunk is one
// contiguous range of the host region, so bringing it to the device is one copy, and its parameters'
// AdamW moments and gradients belong to it too.
// Under ZeRO 2 and 3 with tensor parallelism the tensor-parallel parts and the whole (replicated)
// parameters go into separate chunks (`partsApart`): the gradient norm is summed from chunk shards, and
// a part's squares are summed over the tensor-parallel ranks while a whole parameter's count once, so a
// shard must hold one kind only (ir/passes/adamw.ts).
import { SettingError } from "../../base/errors.ts";
import { formatBytes } from "../../base/units.ts";
import { type Graph, type ParamInfo, numel } from "../types.ts";
import { alignUp } from "./arena_plan.ts";

export interface Chunk {
  index: number;
  /** Parameter names, in visit order; each starts at an aligned offset within the chunk. */
  params: string[];
  /** Byte offset of each parameter within the chunk. */
  offsets: Map<string, number>;
  /** Bytes the chunk's parameters occupy (aligned), which is what one copy of it moves. */
  bytes: number;
}

export interface ChunkLayout {
  /** The most parameter bytes one chunk may hold. */
  capacity: number;
  chunks: Chunk[];
  chunkOf: Map<string, number>;
  /** Capacity left unused, summed over chunks: what fixed-size chunks would waste. */
  wasteBytes: number;
  /** Given with --chunk-size, chosen for the least waste, or the finest possible (the largest parameter). */
  chosen: "given" | "searched" | "finest";
}

interface Visited {
  name: string;
  bytes: number;
  /** A tensor-parallel part (the shard pass cut it), not a whole parameter. */
  part: boolean;
}

/** Parameters in the order the forward first reads them; any it never reads come last, in state_dict order. */
export function visitOrder(g: Graph): Visited[] {
  const byValue = new Map(g.params.map((p) => [p.value.id, p]));
  const seen = new Set<string>();
  const order: Visited[] = [];
  const visit = (p: ParamInfo) => {
    if (seen.has(p.name)) return;
    seen.add(p.name);
    order.push({ name: p.name, bytes: alignUp(numel(p.shape) * 4), part: p.shard !== undefined });
  };
  for (const n of g.nodes)
    for (const v of n.inputs) {
      const p = byValue.get(v.id);
      if (p) visit(p);
    }
  for (const p of g.params) visit(p);
  return order;
}

/**
 * In visit order; with `partsApart`, one chunk open for parts and one for whole parameters. Without
 * `named`, the chunks list no parameters: only their bytes, which is all the capacity search weighs.
 */
function pack(order: readonly Visited[], capacity: number, partsApart: boolean, named = true): Chunk[] {
  const chunks: Chunk[] = [];
  const open = new Map<boolean, Chunk>(); // kind (a part or not) -> the chunk being filled
  for (const { name, bytes, part } of order) {
    const kind = partsApart && part;
    let last = open.get(kind);
    if (!last || last.bytes + bytes > capacity) {
      last = { index: chunks.length, params: [], offsets: new Map(), bytes: 0 };
      chunks.push(last);
      open.set(kind, last);
    }
    if (named) {
      last.params.push(name);
      last.offsets.set(name, last.bytes);
    }
    last.bytes += bytes;
  }
  return chunks;
}

/**
 * ZeRO: each of `ranks` data-parallel ranks owns one contiguous shard of a chunk, this many floats (the
 * chunk's bytes split evenly and aligned, so the chunk is padded to ranks x shard).
 */
export function shardElements(chunk: Chunk, ranks: number): number {
  return alignUp(Math.ceil(chunk.bytes / ranks)) / 4;
}

/** ZeRO over data-parallel ranks in these chunks (ir/passes/adamw.ts, memory_plan.ts). */
export interface ZeroSharding {
  /** 1: AdamW moments sharded; 2: gradients too (reduce-scattered by chunk); 3: parameters too (gathered for use). */
  stage: 1 | 2 | 3;
  ranks: number;
  chunks: ChunkLayout;
}

/** The persistent name of this rank's shard of a chunk's parameters (stage 3). */
export function paramShardName(chunk: number): string {
  return `zero.param.chunk${chunk}`;
}

/** Where a chunk's shard gradient is kept between the data-parallel pass and the optimizer (stage 2). */
export function shardGradKey(chunk: number): string {
  return `zero.chunk${chunk}`;
}

const SEARCH_STEPS = 256;

/** The smallest capacity any layout may have: the largest parameter's aligned size. */
export function finestCapacity(g: Graph): number {
  return Math.max(...visitOrder(g).map((p) => p.bytes));
}

/**
 * Packs the parameters into chunks. Without a given capacity it searches [L, 2L], L the largest
 * parameter, for the capacity that leaves the least unused space (Gemini's search), preferring the
 * smaller capacity on a tie: smaller chunks let the device hold less at a time. With `partsApart`, no
 * chunk holds both a tensor-parallel part and a whole parameter.
 */
export function layoutChunks(g: Graph, capacity?: number, chosen: "given" | "finest" = "given", partsApart = false): ChunkLayout {
  const order = visitOrder(g);
  const largest = order.reduce((best, p) => (p.bytes > best.bytes ? p : best), order[0]);
  const wasteOf = (chunks: readonly Chunk[], cap: number) => chunks.reduce((s, c) => s + cap - c.bytes, 0);
  const withCapacity = (cap: number, chosen: ChunkLayout["chosen"]): ChunkLayout => {
    const chunks = pack(order, cap, partsApart);
    const chunkOf = new Map(chunks.flatMap((c) => c.params.map((name) => [name, c.index] as const)));
    return { capacity: cap, chunks, chunkOf, wasteBytes: wasteOf(chunks, cap), chosen };
  };
  if (capacity !== undefined) {
    if (capacity < largest.bytes)
      throw new SettingError(
        (name) =>
          `${name("chunkSize")} ${formatBytes(capacity)} is smaller than the largest tensor that must stay whole: ` +
          `${largest.name} needs ${formatBytes(largest.bytes)} (${largest.bytes} bytes)`,
      );
    return withCapacity(capacity, chosen);
  }
  // The capacities are weighed by their chunks' bytes alone; only the best one's chunks are named.
  let [best, leastWaste] = [largest.bytes, wasteOf(pack(order, largest.bytes, partsApart, false), largest.bytes)];
  for (let i = 1; i <= SEARCH_STEPS; i++) {
    const cap = alignUp(largest.bytes + Math.round((largest.bytes * i) / SEARCH_STEPS));
    const waste = wasteOf(pack(order, cap, partsApart, false), cap);
    if (waste < leastWaste) [best, leastWaste] = [cap, waste];
  }
  return withCapacity(best, "searched");
}
