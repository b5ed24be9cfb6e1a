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
 *
 * Each count is found from a guess, so a good guess costs two plans where bisecting the whole range
 * costs one for each halving. What fits only shrinks as the count grows, so both find the same count.
 * The guesses: what this search found at the previous lookahead, else what an earlier search of the
 * same planning found at this one (`found`, which this search adds to), else the device memory left
 * over, in chunks.
 */
export function offloadSchedule(
  chunkBytes: readonly number[],
  plans: SchedulePlans,
  budgets: Budgets,
  cannotFit: (s: OffloadSchedule) => boolean,
  found: Map<number, Counts> = new Map(),
): PlanCandidate[] {
  const chunkCount = chunkBytes.length;
  const fitting = (p: PlanCandidate) => fits(p, deviceOnly(budgets));
  const firstOf = (k: number, of: readonly number[]) => new Set(of.slice(0, k));
  const planIfFits = (s: OffloadSchedule) => {
    const p = cannotFit(s) ? undefined : plans.probe(s);
    return p !== undefined && fitting(p) ? p : undefined;
  };
  const justInTime = plans.plan({ resident: new Set(), lookahead: 0, keep: new Set() });
  if (!fitting(justInTime)) return [justInTime];
  const order = residencyOrder(justInTime.train, chunkCount);
  const loads = justInTime.checkpoint.chunkLoads;
  /** How many chunks of `of`, in order, the device memory `p` leaves free holds, at `copies` of each. */
  const chunksInSlack = (p: PlanCandidate, of: readonly number[], copies: number) => {
    let free = (budgets.device ?? Infinity) - p.arenaBytes;
    let k = 0;
    while (k < of.length && (free -= copies * chunkBytes[of[k]]) >= 0) k++;
    return k;
  };
  let best = justInTime;
  let guesses: Counts | undefined;
  for (let lookahead = 0; lookahead <= Math.min(MAX_LOOKAHEAD, loads - 1); lookahead++) {
    guesses ??= found.get(lookahead);
    const bare: OffloadSchedule = { resident: new Set(), lookahead, keep: new Set() };
    // All chunks resident is the resident plan, which did not fit. When even none resident does not, no
    // further lookahead fits either.
    const resident = largestFitting(0, chunkCount - 1, guesses?.resident ?? chunksInSlack(justInTime, order, RESIDENT_COPIES), (k) =>
      k === 0 && lookahead === 0 ? justInTime : planIfFits({ ...bare, resident: firstOf(k, order) }),
    );
    if (resident === undefined) break;
    const [r, residentPlan] = resident;
    const withResident = { ...bare, resident: firstOf(r, order) };
    const offloaded = order.filter((c) => !withResident.resident.has(c));
    // Each chunk fewer resident than where the guess was found leaves room to keep about three more.
    const keepGuess = guesses ? guesses.keep + RESIDENT_COPIES * (guesses.resident - r) : chunksInSlack(residentPlan, offloaded, 1);
    const [k, plan] = largestFitting(1, offloaded.length, keepGuess, (k) =>
      planIfFits({ ...withResident, keep: firstOf(k, offloaded) }),
    ) ?? [0, residentPlan];
    guesses = { resident: r, keep: k };
    found.set(lookahead, guesses);
    if (plan.checkpoint.predicted.seconds < best.checkpoint.predicted.seconds) best = plan;
  }
  return [best];
}

/** A schedule's plan, and a probe of it, which the search discards unless it fits the device budget. */
export interface SchedulePlans {
  plan(s: OffloadSchedule): PlanCandidate;
  /** The schedule's plan, or undefined as soon as planning finds it exceeds the device budget. */
  probe(s: OffloadSchedule): PlanCandidate | undefined;
}

/** How many chunks a schedule keeps resident, and how many forward copies it keeps for the backward. */
export interface Counts {
  resident: number;
  keep: number;
}

/**
 * The largest k in [lo, hi] whose plan fits, with its plan, or undefined when lo's does not fit either.
 * `planAt` gives k's plan when it fits. Steps that double from the guess bracket the answer; bisection
 * ends it.
 */
function largestFitting(
  lo: number,
  hi: number,
  guess: number,
  planAt: (k: number) => PlanCandidate | undefined,
): [number, PlanCandidate] | undefined {
  // Invariant: every count up to `fitsUpTo` fits (vacuously below lo), none above `hi` does.
  let fitsUpTo = lo - 1;
  let best: PlanCandidate | undefined;
  const probe = (k: number) => {
    const p = planAt(k);
    if (p !== undefined) [fitsUpTo, best] = [k, p];
    else hi = k - 1;
    return p !== undefined;
  };
  if (probe(Math.min(hi, Math.max(lo, guess)))) for (let step = 1; fitsUpTo < hi && probe(Math.min(hi, fitsUpTo + step)); step *= 2);
  else for (let step = 1; fitsUpTo < hi && !probe(Math.max(fitsUpTo + 1, hi - step + 1)); step *= 2);
  while (fitsUpTo < hi) probe(Math.ceil((fitsUpTo + 1 + hi) / 2));
  return best === undefined ? undefined : [fitsUpTo, best];
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

/**
 * A resident chunk holds its parameters, gradients and both AdamW moments on the device, less the copy
 * of its parameters an offloaded chunk holds there in turn: about three copies of its bytes more.
 */
const RESIDENT_COPIES = 3;
