// Strategy: model data in host memory, in chunks copied in as needed: which chunks stay resident, how
// far ahead copies run and which forward copies the backward keeps.
import type { OffloadSchedule } from "../../ir/passes/offload.ts";
import { type Budgets, deviceOnly, fits } from "../fits.ts";
import type { CompiledProgram, PlanCandidate } from "../plan.ts";

/**
 * The offload schedule for one checkpoint mode, with the memory planner as the judge of what fits and
 * the cost model of what is fastest. For each lookahead (how many loads ahead copies start), it keeps
 * as many chunks resident as fit (in `residencyOrder`), then keeps as many forward copies for the
 * backward as fit (those whose next use is nearest first); of these schedules, the one with the least
 * predicted step time wins. Returns that plan, or, when nothing fits, the all-offloaded just-in-time one,
 * so the caller can say how much memory it needs.
 */
export function offloadSchedule(
  chunkCount: number,
  planWith: (s: OffloadSchedule) => PlanCandidate,
  budgets: Budgets,
  cannotFit: (s: OffloadSchedule) => boolean,
): PlanCandidate[] {
  const fitting = (p: PlanCandidate) => fits(p, deviceOnly(budgets));
  const firstOf = (k: number, of: readonly number[]) => new Set(of.slice(0, k));
  /** The largest k in [lo, hi] whose plan fits, given that lo's does; with its plan. */
  const largestFitting = (lo: number, hi: number, loPlan: PlanCandidate, make: (k: number) => OffloadSchedule): [number, PlanCandidate] => {
    let best = loPlan;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      const schedule = make(mid);
      const p = cannotFit(schedule) ? undefined : planWith(schedule);
      if (p !== undefined && fitting(p)) [lo, best] = [mid, p];
      else hi = mid - 1;
    }
    return [lo, best];
  };
  const justInTime = planWith({ resident: new Set(), lookahead: 0, keep: new Set() });
  if (!fitting(justInTime)) return [justInTime];
  const order = residencyOrder(justInTime.train, chunkCount);
  const loads = justInTime.checkpoint.chunkLoads;
  let best = justInTime;
  for (let lookahead = 0; lookahead <= Math.min(MAX_LOOKAHEAD, loads - 1); lookahead++) {
    const bare: OffloadSchedule = { resident: new Set(), lookahead, keep: new Set() };
    const barePlan = lookahead === 0 ? justInTime : planWith(bare);
    if (!fitting(barePlan)) break;
    // All chunks resident is the resident plan, which did not fit.
    const [r, residentPlan] = largestFitting(0, chunkCount - 1, barePlan, (k) => ({ ...bare, resident: firstOf(k, order) }));
    const withResident = { ...bare, resident: firstOf(r, order) };
    const offloaded = order.filter((c) => !withResident.resident.has(c));
    const [, plan] = largestFitting(0, offloaded.length, residentPlan, (k) => ({ ...withResident, keep: firstOf(k, offloaded) }));
    if (plan.checkpoint.predicted.seconds < best.checkpoint.predicted.seconds) best = plan;
  }
  return [best];
}

/**
 * The order in which chunks stay resident as the budget allows. First the chunks whose device copies are
 * live for most of the step even when every chunk moves just in time (a tied embedding, read at both ends
 * of the forward and of the backward): offloading them frees little memory, yet costs copies at the
 * step's start and a host AdamW at its end, where no compute hides them. Then the last ones the forward
 * reads: the backward needs them first.
 */
function residencyOrder(justInTime: CompiledProgram, chunkCount: number): number[] {
  const liveNodes = new Array<number>(chunkCount).fill(0);
  for (const b of justInTime.memory.buffers) if (b.node.op === "chunk_h2d") liveNodes[b.node.attrs.chunk!] += b.end - b.start + 1;
  const mostlyLive = (c: number) => liveNodes[c] > justInTime.graph.nodes.length / 2;
  const reversed = Array.from({ length: chunkCount }, (_, i) => chunkCount - 1 - i);
  return [...reversed.filter(mostlyLive), ...reversed.filter((c) => !mostlyLive(c))];
}

/** Copies further ahead than this rarely help: the link is busy with the nearer ones. */
const MAX_LOOKAHEAD = 3;
