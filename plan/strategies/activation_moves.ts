// Strategy: under --checkpoint auto, blocks whose saved activations move to the host between the
// forward and the backward instead of being recomputed (ir/passes/offload_activations.ts).
import { type Budgets, fits } from "../fits.ts";
import type { Moves } from "../pipeline.ts";
import type { PlanCandidate } from "../plan.ts";

/** Lookaheads tried for activation copies; the first is the one the auto search plans with. */
export const MOVE_LOOKAHEADS = [1, 0, 2];

/**
 * Plans that move saved activations to the host instead of recomputing them, for --checkpoint auto:
 * per block (checkpoint region), keep, recompute or move. Moved blocks are the first M (their copies
 * have the most compute to hide behind: out early in the forward, back late in the backward), recomputed
 * ones the next R. For M = 1, 2, ... it finds the least R that fits, counting down from the last M's
 * (a moved block also frees its output, which a recomputed one keeps, so R mostly falls as M grows; when
 * it does not fit it tries all the rest recomputed) and plays the step out; it stops when nothing is left
 * to recompute, or when a plan is slower than the best so far while compute waits for the link (more
 * moves would only wait longer). Each plan starts copies a block ahead, or just in time where only that
 * fits; the best plan's copies are then tried further ahead.
 * Moving never beats `none` (it adds copies, removes no compute), so when that fits nothing is planned.
 */
export function activationMoves(
  planWith: (moves: Moves, recomputed: number) => PlanCandidate,
  base: PlanCandidate[],
  totalRegions: number,
  budgets: Budgets,
): PlanCandidate[] {
  const fitting = (p: PlanCandidate) => fits(p, budgets);
  if (totalRegions === 0 || fitting(base[0])) return [];
  const fittingBlocks = base.filter((p) => p.checkpoint.mode === "blocks" && fitting(p));
  // When no resident plan fits, one check (every block moved, copies just in time: the least device
  // memory moving can reach) rules moving out before any search.
  if (!base.some(fitting) && !fitting(planWith({ count: totalRegions, lookahead: 0 }, 0))) return [];
  let recomputed = fittingBlocks.length > 0 ? Math.min(...fittingBlocks.map((p) => p.checkpoint.regions)) : totalRegions;
  // Copies a block ahead overlap best; just in time holds the least memory, for when that does not fit.
  const [ahead, justInTime] = [MOVE_LOOKAHEADS[0], 0];
  const planAt = (moved: number, r: number): PlanCandidate => {
    const plan = planWith({ count: moved, lookahead: ahead }, r);
    if (fitting(plan)) return plan;
    const tight = planWith({ count: moved, lookahead: justInTime }, r);
    return fitting(tight) ? tight : plan;
  };
  const found: PlanCandidate[] = [];
  let best: PlanCandidate | undefined;
  for (let moved = 1; moved <= totalRegions; moved++) {
    let r = Math.min(recomputed, totalRegions - moved);
    let plan = planAt(moved, r);
    if (!fitting(plan)) {
      if (r === totalRegions - moved) continue;
      r = totalRegions - moved;
      plan = planAt(moved, r);
      if (!fitting(plan)) continue;
    }
    while (r > 0) {
      const fewer = planAt(moved, r - 1);
      if (!fitting(fewer)) break;
      [r, plan] = [r - 1, fewer];
    }
    found.push(plan);
    recomputed = r;
    const seconds = plan.checkpoint.predicted.seconds;
    if (best === undefined || seconds < best.checkpoint.predicted.seconds) best = plan;
    else if (plan.checkpoint.predicted.stallSeconds > 0) break;
    if (r === 0) break;
  }
  if (best === undefined) return found;
  const { moved, regions, moveLookahead } = best.checkpoint;
  const others = MOVE_LOOKAHEADS.filter((l) => l !== moveLookahead && l !== justInTime)
    .map((l) => planWith({ count: moved, lookahead: l }, regions))
    .filter(fitting);
  return [...found, ...others];
}
