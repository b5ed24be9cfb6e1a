// The disk tier's placement: when host memory cannot hold the offloaded model data, it goes to disk
// chunk by chunk in chunk order, until what stays fits the host budget, in the order of the disk bytes a
// step moves for each host byte it frees:
// - the AdamW moments first (ZeRO-Infinity's order): host AdamW reads and writes them once, 2 bytes a byte;
// - then, when every offloaded chunk's moments are there, the host copies of the gradients: written
//   once from the device and read once by host AdamW (the gradient norm takes its sums on the way
//   out), 2 bytes a byte, but each frees half what a chunk's moments free;
// - then the parameters: read by each phase's copy to the device, then read and written by host AdamW,
//   4 bytes a byte.
// Each kind adds the staging buffers its data passes through to host memory. A plan whose host budget
// even this cannot meet does not fit, and `fits` says so.
import { type Graph, numel, trainedParams } from "../ir/types.ts";
import { alignUp } from "../ir/passes/arena_plan.ts";
import { DISK_BLOCK, type Offloaded, type PersistentLayout, diskBlocks, diskSpan } from "../ir/passes/memory_plan.ts";

/**
 * The layout with as much offloaded model data on disk as `hostBudget` needs: `layoutOf(offloaded)` is
 * the layout with everything in host memory, over budget.
 */
export function placeOnDisk(
  g: Graph,
  offloaded: Offloaded,
  layoutOf: (o: Offloaded) => PersistentLayout,
  hostBudget: number,
): PersistentLayout {
  const inHost = layoutOf(offloaded);
  const momentsOnDisk = momentsToDisk(g, offloaded, inHost.hostBytes, hostBudget);
  const withMoments = layoutOf({ ...offloaded, momentsOnDisk });
  if (withMoments.hostBytes <= hostBudget) return withMoments;
  // Moments alone are not enough: all of them go, then gradients chunk by chunk.
  const all = new Set(offloaded.chunks.chunks.filter((c) => !offloaded.resident.has(c.index)).map((c) => c.index));
  const allMoments = layoutOf({ ...offloaded, momentsOnDisk: all });
  const gradsOnDisk = gradsToDisk(g, offloaded, allMoments.hostBytes, hostBudget);
  const withGrads = layoutOf({ ...offloaded, momentsOnDisk: all, gradsOnDisk });
  if (withGrads.hostBytes <= hostBudget) return withGrads;
  // Then all gradients, and parameters chunk by chunk.
  const allGrads = layoutOf({ ...offloaded, momentsOnDisk: all, gradsOnDisk: all });
  const paramsOnDisk = paramsToDisk(g, offloaded, allGrads.hostBytes, hostBudget);
  return layoutOf({ ...offloaded, momentsOnDisk: all, gradsOnDisk: all, paramsOnDisk });
}

/**
 * The fewest offloaded chunks, in chunk order, whose copies of each trained parameter's bytes (`copies`:
 * 2 for the moments, 1 for the gradient's host copy) go to disk so that `hostBytes` comes within
 * `hostBudget`, counting the two staging buffers the kind adds to host memory (each the largest such
 * tensor on disk, in whole blocks) and `slack` bytes for the page alignment they start at.
 */
function chunksToDisk(g: Graph, offloaded: Offloaded, hostBytes: number, hostBudget: number, copies: number, slack: number): Set<number> {
  const trained = new Map(trainedParams(g).map((p) => [p.name, numel(p.shape) * 4]));
  const chosen = new Set<number>();
  let host = hostBytes;
  let largest = 0;
  for (const chunk of offloaded.chunks.chunks) {
    if (host + 2 * largest + slack <= hostBudget) break;
    if (offloaded.resident.has(chunk.index)) continue;
    chosen.add(chunk.index);
    for (const name of chunk.params) {
      const bytes = trained.get(name);
      if (bytes === undefined) continue;
      host -= copies * alignUp(bytes);
      largest = Math.max(largest, diskBlocks(bytes));
    }
  }
  return chosen;
}

/** The chunks whose moments go to disk: `hostBytes` is the layout's with every moment in host memory. */
function momentsToDisk(g: Graph, offloaded: Offloaded, hostBytes: number, hostBudget: number): Set<number> {
  return chunksToDisk(g, offloaded, hostBytes, hostBudget, 2, 0);
}

/** The chunks whose gradients' host copies go to disk too: `hostBytes` is the layout's with every moment on disk. */
function gradsToDisk(g: Graph, offloaded: Offloaded, hostBytes: number, hostBudget: number): Set<number> {
  return chunksToDisk(g, offloaded, hostBytes, hostBudget, 1, DISK_BLOCK);
}

/**
 * The offloaded chunks whose parameters go to disk too so that `hostBytes` (the layout's with every
 * moment and gradient on disk) comes within `hostBudget`: the fewest in chunk order, counting the two staging buffers
 * (a chunk's, a parameter's blocks) and a block for the page alignment they start at.
 */
function paramsToDisk(g: Graph, offloaded: Offloaded, hostBytes: number, hostBudget: number): Set<number> {
  const elements = new Map(g.params.map((p) => [p.name, numel(p.shape)]));
  const chosen = new Set<number>();
  let host = hostBytes;
  let load = 0;
  let param = 0;
  for (const chunk of offloaded.chunks.chunks) {
    if (host + load + param + DISK_BLOCK <= hostBudget) break;
    if (offloaded.resident.has(chunk.index)) continue;
    chosen.add(chunk.index);
    host -= chunk.bytes;
    load = Math.max(load, diskBlocks(chunk.bytes));
    for (const name of chunk.params) param = Math.max(param, diskSpan(chunk.offsets.get(name)!, 4 * elements.get(name)!));
  }
  return chosen;
}
