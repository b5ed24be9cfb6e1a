// With model data offloaded, how many blocks' activations can move to the host as well: the schedule
// searches of plan/planner.ts run once more with that many moved, when the link has time for them.
import { type Graph, valueBytes } from "../../ir/types.ts";
import type { Machine } from "../../ir/cost_model.ts";
import { regionCount } from "../../ir/passes/recompute.ts";
import { movedActivations } from "../../ir/passes/offload_activations.ts";
import type { PlanCandidate } from "../plan.ts";

/** Bytes of saved activations a checkpoint region hands to the backward, on average over the regions. */
export function savedBytesPerRegion(g: Graph): number {
  const regions = regionCount(g);
  if (regions === 0) return 0;
  const all = movedActivations(g, { regions: new Set(Array.from({ length: regions }, (_, i) => i)), lookahead: 0 });
  return all.reduce((s, m) => s + valueBytes(m.value), 0) / regions;
}

/**
 * With model data offloaded: how many blocks' activations could move without making the link the
 * bottleneck: the link's idle time under the fastest fitting plan's compute pays for their bytes out and
 * back at the link's rate. 0 when the link has no idle time (as for models far larger than the device,
 * where model data keeps the link busy), so `stow capacity` rarely pays for the search.
 */
export function movesWithinSlack(fitting: PlanCandidate[], bytesPerRegion: number, machine: Machine): number {
  const offloaded = fitting.filter((p) => p.checkpoint.offload);
  if (offloaded.length === 0 || bytesPerRegion === 0) return 0;
  const best = offloaded.reduce((a, b) => (b.checkpoint.predicted.seconds < a.checkpoint.predicted.seconds ? b : a)).checkpoint;
  if (best.moved > 0) return 0;
  // The link is idle while the device computes or waits on its ranks.
  const slack = best.predicted.computeSeconds + best.predicted.networkSeconds - best.predicted.linkSeconds;
  const perRegion = (2 * bytesPerRegion) / machine.linkBandwidth;
  // The last block's values are needed right after they are made: moving it gains nothing.
  return Math.max(0, Math.min(best.totalRegions - 1, Math.floor(slack / perRegion)));
}
