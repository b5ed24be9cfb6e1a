// The disk tier's placement: when host memory cannot hold the offloaded model data, the AdamW moments
// of offloaded chunks go to disk, chunk by chunk in chunk order, until what stays fits the host budget
// (ZeRO-Infinity's order: optimizer state first, as it is touched once a step, by host AdamW).
// Parameters stay in host memory: every chunk copy reads them. A plan whose host budget even this
// cannot meet does not fit, and `fits` says so.
import { type Graph, numel, trainedParams } from "../ir/types.ts";
import { alignUp } from "../ir/passes/arena_plan.ts";
import { diskBlocks, type Offloaded } from "../ir/passes/memory_plan.ts";

/**
 * The offloaded chunks whose moments go to disk so that `hostBytes` (the layout's with every moment in
 * host memory) comes within `hostBudget`: the fewest in chunk order, counting the staging buffers the
 * disk tier adds to host memory.
 */
export function momentsToDisk(g: Graph, offloaded: Offloaded, hostBytes: number, hostBudget: number): Set<number> {
  const trained = new Map(trainedParams(g).map((p) => [p.name, numel(p.shape) * 4]));
  const chosen = new Set<number>();
  let host = hostBytes;
  let largest = 0;
  for (const chunk of offloaded.chunks.chunks) {
    if (host + 2 * largest <= hostBudget) break;
    if (offloaded.resident.has(chunk.index)) continue;
    chosen.add(chunk.index);
    for (const name of chunk.params) {
      const bytes = trained.get(name);
      if (bytes === undefined) continue;
      host -= 2 * alignUp(bytes);
      largest = Math.max(largest, diskBlocks(bytes));
    }
  }
  return chosen;
}
