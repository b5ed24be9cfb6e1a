// Kernel tiles under a device budget: the fused LM head's workspace is a tile of logits, and a smaller
// tile holds less at the cost of more, smaller products. The default tile (lmHeadTile, the fastest) is
// planned first; only when no plan fits the device budget with it are smaller tiles tried, largest
// first, and the first that fits is taken. The kernels give bitwise the same results with every tile of
// whole units (ir/passes/fuse_lm_head.ts), so the choice changes memory and time, never the numbers.
// When nothing fits, the refusal is the one needing the least memory, the smallest tile's planned too.
import { DoesNotFitError } from "../choose.ts";
import type { LmHeadTile } from "../../ir/passes/fuse_lm_head.ts";

/**
 * The plan `planWith` makes with the default tile (undefined) or, when that does not fit the device
 * budget, with the first of `smaller` (largest first) that fits. `saving(t)`: the most a plan's arena
 * can shrink with tile `t` instead of the default (its workspace saving); tiles that cannot bring the
 * least memory found within `budget` are not planned.
 */
export function kernelTiles<P>(
  planWith: (tile?: LmHeadTile) => P,
  smaller: readonly LmHeadTile[],
  saving: (t: LmHeadTile) => number,
  budget: number | undefined,
): P {
  let refused: DoesNotFitError;
  try {
    return planWith(undefined);
  } catch (e) {
    if (!(e instanceof DoesNotFitError) || e.budget !== "device" || budget === undefined || smaller.length === 0) throw e;
    refused = e;
  }
  const least = refused.least?.arenaBytes ?? Infinity;
  const leastOf = (e: DoesNotFitError) => e.least?.arenaBytes ?? Infinity;
  let tried: LmHeadTile | undefined;
  for (const t of smaller) {
    if (least - saving(t) > budget) continue;
    tried = t;
    try {
      return planWith(t);
    } catch (e) {
      if (!(e instanceof DoesNotFitError) || e.budget !== "device") throw e;
      if (leastOf(e) < leastOf(refused)) refused = e;
    }
  }
  // Nothing fits: the refusal that needs the least memory, the smallest tile's planned too (its plan may
  // fit after all, where the saving bound was loose).
  const smallest = smaller[smaller.length - 1];
  if (tried !== smallest) {
    try {
      return planWith(smallest);
    } catch (e) {
      if (!(e instanceof DoesNotFitError) || e.budget !== "device") throw e;
      if (leastOf(e) < leastOf(refused)) refused = e;
    }
  }
  throw refused;
}
