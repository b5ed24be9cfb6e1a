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
  const leastOf = (e: DoesNotFitError) => e.least?.arenaBytes ?? Infinity;
  let refused: DoesNotFitError | undefined;
  // The plan with `tile`, or undefined when the device budget refuses it (keeping the least refusal).
  const attempt = (tile?: LmHeadTile): P | undefined => {
    try {
      return planWith(tile);
    } catch (e) {
      if (!(e instanceof DoesNotFitError) || e.budget !== "device") throw e;
      if (refused === undefined || leastOf(e) < leastOf(refused)) refused = e;
      return undefined;
    }
  };
  const plain = attempt();
  if (plain !== undefined) return plain;
  if (budget !== undefined) {
    const least = leastOf(refused!);
    const smallest = smaller[smaller.length - 1];
    for (const t of smaller) {
      // The smallest is always planned: its plan may fit where the saving bound was loose.
      if (t !== smallest && least - saving(t) > budget) continue;
      const p = attempt(t);
      if (p !== undefined) return p;
    }
  }
  throw refused;
}
