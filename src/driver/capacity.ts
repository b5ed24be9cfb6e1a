// `stow capacity`: the largest member of a model's family whose training step fits a target's device
// memory and a host memory cap, with the planner as the judge (a member fits when compilePlan finds a
// plan, offloaded or not). Plans of large models take seconds each, so the search makes few. It first
// plans a guess: the largest member whose model data, at 16 bytes a parameter, fits in device plus host
// memory. When host memory is what the guess lacks, the answer is near: it steps down from the guess
// (1, 2, 4, ... members) until a member fits. When the guess fits, it steps up likewise. When device
// memory is what it lacks (activations, not model data, are the limit), the answer may be far below:
// it doubles up from the smallest member instead, so it never plans members much larger than the
// answer. Then it bisects the bracket. Members whose parameters and AdamW moments alone (12 bytes a
// parameter) exceed device plus host memory are known not to fit without planning. The search assumes
// that a member fits whenever a larger one does.
import { UserError } from "../cli/errors.ts";
import { TraceError } from "../dsl/trace.ts";
import type { Target } from "../targets/target.ts";
import { type CompileOptions, DoesNotFitError, type Plan, compilePlan } from "./compile.ts";
import { type Family, paramCount } from "./family.ts";
import { describeTraceError } from "./prepare.ts";

/** Compile options that do not depend on the member: everything but its shape and the budgets. */
export type SearchOptions = Omit<CompileOptions, "batch" | "seq" | "deviceMemory" | "hostMemory" | "machine">;

export interface Probe {
  member: number;
  fits: boolean;
  /** Why it does not fit: the planner's message (first line), or the 12 bytes a parameter bound. */
  reason?: string;
  /** Wall time of planning it; 0 when it was ruled out without a plan. */
  seconds: number;
}

export interface Capacity {
  family: Family;
  target: Target;
  deviceMemory: number;
  hostMemory: number;
  /** The largest member that fits, its parameter count and its plan. */
  member: number;
  params: number;
  plan: Plan;
  /** The member after it, and why it does not fit (undefined when the family has no larger member). */
  next?: Probe;
  /** The member the search started from. */
  guess: number;
  /** Every member planned or ruled out, in order. */
  probes: Probe[];
}

/** Model data a parameter needs at least (parameters and two AdamW moments), and in all (with its gradient). */
const LEAST_BYTES_PER_PARAM = 12;
const BYTES_PER_PARAM = 16;

export function findCapacity(
  family: Family, modelPath: string, target: Target, budgets: { deviceMemory: number; hostMemory: number }, opts: SearchOptions,
  onProbe: (p: Probe) => void = () => {},
): Capacity {
  const memory = budgets.deviceMemory + budgets.hostMemory;
  const params = new Map<number, number>();
  const paramsOf = (k: number) => params.get(k) ?? params.set(k, paramCount(family.member(k))).get(k)!;
  if (family.field !== undefined && paramsOf(2) <= paramsOf(1))
    throw new UserError(`the scale rule's field ${family.field} does not add parameters, so the family does not grow`);
  // The first member whose least model data exceeds all memory (a member past the family's end is out too).
  const bound = firstMember(family.size, (k) => LEAST_BYTES_PER_PARAM * paramsOf(k) > memory);
  const guess = Math.max(1, firstMember(bound - 1, (k) => BYTES_PER_PARAM * paramsOf(k) > memory) - 1);

  const probes: Probe[] = [];
  const plans = new Map<number, Plan>();
  const judge = (k: number): Verdict => {
    const r = family.member(k);
    const started = performance.now();
    const seconds = () => (performance.now() - started) / 1000;
    try {
      const plan = compilePlan(r.definition, modelPath, r.config, {
        ...opts, batch: r.batch, seq: r.seq, deviceMemory: budgets.deviceMemory, hostMemory: budgets.hostMemory, machine: target.machine,
      });
      plans.set(k, plan);
      probes.push({ member: k, fits: true, seconds: seconds() });
      onProbe(probes.at(-1)!);
      return "fits";
    } catch (e) {
      if (e instanceof TraceError) throw new UserError(`${family.label(k)}: ${describeTraceError(e)}`);
      if (!(e instanceof DoesNotFitError)) throw e;
      probes.push({ member: k, fits: false, reason: e.message.split("\n")[0].replace(/ Largest temporaries:$/, ""), seconds: seconds() });
      onProbe(probes.at(-1)!);
      return e.budget;
    }
  };

  const best = largestFitting(judge, guess, bound);
  if (best === 0) {
    const why = probes.find((p) => p.member === 1)?.reason ?? `its model data alone needs ${LEAST_BYTES_PER_PARAM} bytes a parameter`;
    throw new UserError(`not even the smallest member of the family (${family.label(1)}) fits: ${why}`);
  }
  const next = probes.find((p) => p.member === best + 1) ?? (best + 1 === bound && bound <= family.size
    ? { member: bound, fits: false, seconds: 0, reason: `its parameters and AdamW moments alone (${LEAST_BYTES_PER_PARAM} bytes a parameter) exceed device plus host memory` }
    : undefined);
  if (next && !probes.includes(next)) probes.push(next);
  return { family, target, ...budgets, member: best, params: paramsOf(best), plan: plans.get(best)!, next, guess, probes };
}

/** The least k in [1, last] with pred(k), or last + 1; pred must be monotone (false, then true). */
function firstMember(last: number, pred: (k: number) => boolean): number {
  let lo = 0; // pred(lo) is false, or lo is 0
  let hi = 1;
  while (!pred(hi)) {
    if (hi >= last) return last + 1;
    lo = hi;
    hi = Math.min(last, hi * 2);
  }
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (pred(mid)) hi = mid;
    else lo = mid;
  }
  return hi;
}

type Verdict = "fits" | "device" | "host";

/**
 * The largest k in [1, bound) that fits, or 0. From the guess it steps (1, 2, 4, ... members) towards the
 * answer until a fitting and a failing member bracket it, or, when the guess lacks device memory, doubles
 * up from 1; then it bisects.
 */
function largestFitting(judge: (k: number) => Verdict, guess: number, bound: number): number {
  let lo = 0; // fits, or 0
  let hi = bound; // does not fit
  const first = judge(guess);
  if (first === "fits") {
    lo = guess;
    for (let step = 1; lo + step < hi; step *= 2) {
      if (judge(lo + step) !== "fits") {
        hi = lo + step;
        break;
      }
      lo += step;
    }
  } else if (first === "host") {
    hi = guess;
    for (let step = 1; hi - step > lo; step *= 2) {
      if (judge(hi - step) === "fits") {
        lo = hi - step;
        break;
      }
      hi -= step;
    }
  } else {
    hi = guess;
    for (let k = 1; k < hi; k *= 2) {
      if (judge(k) !== "fits") {
        hi = k;
        break;
      }
      lo = k;
    }
  }
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (judge(mid) === "fits") lo = mid;
    else hi = mid;
  }
  return lo;
}
