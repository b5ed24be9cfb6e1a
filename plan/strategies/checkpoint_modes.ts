// Strategy: which checkpoint mode (what the backward recomputes) fits the device budget.
import type { CheckpointMode } from "../../ir/passes/recompute.ts";
import { type Budgets, deviceOnly, fits } from "../fits.ts";
import type { PlanCandidate } from "../plan.ts";

/**
 * The plans --checkpoint auto weighs: none, selective, all blocks, and, when only blocks fit, the fewest
 * blocks that fit (binary search: memory falls and recompute grows with each block recomputed).
 */
export function checkpointModes(
  planFor: (mode: CheckpointMode, regions?: number) => PlanCandidate,
  totalRegions: number,
  budgets: Budgets,
): PlanCandidate[] {
  const plans = [planFor("none"), planFor("selective"), planFor("blocks")];
  // These plans keep model data and activations on the device: only the device budget can refuse them.
  const fitting = (p: PlanCandidate) => fits(p, deviceOnly(budgets));
  if (budgets.device === undefined || fitting(plans[0]) || fitting(plans[1]) || !fitting(plans[2])) return plans;
  let [lo, hi] = [1, totalRegions]; // blocks(hi) fits
  let best = plans[2];
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    const p = planFor("blocks", mid);
    if (fitting(p)) [hi, best] = [mid, p];
    else lo = mid + 1;
  }
  return best === plans[2] ? plans : [...plans, best];
}
