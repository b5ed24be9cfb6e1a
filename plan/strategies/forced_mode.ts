// Strategy: the checkpoint mode the user gave, with moved activations if asked for; only how far ahead
// the activation copies run is left to choose.
import type { CheckpointMode } from "../../ir/passes/recompute.ts";
import { type Budgets, fits } from "../fits.ts";
import { type Moves, NO_MOVES } from "../pipeline.ts";
import type { PlanCandidate } from "../plan.ts";
import { MOVE_LOOKAHEADS } from "./activation_moves.ts";

/** The given mode's plan: with `moveCount` regions moved, at the copy lookahead that fits and is predicted fastest. */
export function forcedMode(
  planFor: (mode: CheckpointMode, regions: number | undefined, moves: Moves) => PlanCandidate,
  mode: CheckpointMode,
  regions: number | undefined,
  moveCount: number,
  budgets: Budgets,
): PlanCandidate[] {
  const options = moveCount === 0 ? [NO_MOVES] : MOVE_LOOKAHEADS.map((lookahead) => ({ count: moveCount, lookahead }));
  return [
    fastest(
      options.map((m) => planFor(mode, regions, m)),
      budgets,
    ),
  ];
}

/** Of plans, the one predicted fastest among those that fit, or, when none fits, the smallest. */
function fastest(plans: PlanCandidate[], budgets: Budgets): PlanCandidate {
  const fitting = plans.filter((p) => fits(p, budgets));
  if (fitting.length === 0) return plans.reduce((a, b) => (b.arenaBytes < a.arenaBytes ? b : a));
  return fitting.reduce((a, b) => (b.checkpoint.predicted.seconds < a.checkpoint.predicted.seconds ? b : a));
}
