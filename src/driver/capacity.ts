// `stow capacity`: the largest member of a model's family whose training step fits a target's device
// memory and a host memory cap, with the planner as the judge (a member fits when compilePlan finds a
// plan, offloaded or not). Plans of large models take seconds each, so the search makes few. It first
// plans a guess: the largest member whose model data, at 16 bytes a parameter, fits in device plus host
// memory. From there it steps down (1, 2, 4, ... members) until a member fits, or up likewise while they
// fit, and bisects the bracket. Below a member the host cannot hold, it goes instead to the member whose
// model data is smaller by the shortfall the planner reported (the device holds some model data too, so
// this is approximate), then tries the one above. Members whose parameters and AdamW moments alone (12 bytes a parameter)
// exceed device plus host memory are known not to fit without planning. With a disk tier
// (--disk-memory), which can take all of the offloaded model data (host memory then holds staging
// buffers), the bound counts the disk too: a member is out when 12 bytes a parameter exceed all three.
// The guess does not (16 bytes a parameter in device plus host), and the search climbs from it; below a
// member the host cannot hold it steps down as below one the device cannot, as what the host lacks then
// (staging, moved activations) does not shrink with the parameters.
//
// A member is planned at the options' --grad-accum. The planner offloads model data only at 1
// (`offloadsModelData`), so at more micro-batches the model data must live on the device, and the bound
// and the guess count the device alone. Which widths and micro-batches to weigh is capacity_choices.ts's.
//
// On several ranks (`--ranks N`: N GPUs of the target at --dp N --zero 3) the host memory given is the
// machine's, split evenly between the ranks' processes, and each rank plans its shard: the guess counts
// N devices' memory and all of the host's, and a host shortfall is one rank's, N times over.
//
// Bisection assumes that a member fits whenever a larger one does. That holds for model data, but not
// exactly for device memory: chunk sizes are chosen per member for the least waste, so a member can need
// more device memory than the next. Starting from the top and stepping down finds the largest fitting
// member near the guess; a smaller member that happens not to fit below it does not hide it.
import { flagName } from "../cli/flag_names.ts";
import { UserError } from "../../base/errors.ts";
import { TraceError } from "../dsl/trace.ts";
import type { Target } from "../targets/target.ts";
import { type CompileOptions, type Plan, offloadsModelData } from "../../plan/plan.ts";
import { DoesNotFitError } from "../../plan/choose.ts";
import { compilePlan } from "./compile.ts";
import { type Family, paramCount } from "./family.ts";
import { describeTraceError } from "./prepare.ts";

/** Compile options that do not depend on the member: everything but its shape and the budgets. */
export type SearchOptions = Omit<CompileOptions, "batch" | "seq" | "deviceMemory" | "hostMemory" | "diskMemory" | "machine">;

export interface Probe {
  member: number;
  fits: boolean;
  /** The memory it lacks: the device's, or the host's (also when ruled out by the 12 bytes a parameter bound). */
  lacks?: "device" | "host";
  /** Why it does not fit: the planner's message (first line), or the 12 bytes a parameter bound. */
  reason?: string;
  /** When the host lacks: the host memory the member's model data needs (the planner's figure). */
  hostNeed?: number;
  /** Wall time of planning it; 0 when it was ruled out without a plan. */
  seconds: number;
}

export interface Capacity {
  family: Family;
  target: Target;
  deviceMemory: number;
  hostMemory: number;
  diskMemory?: number;
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
export const BYTES_PER_PARAM = 16;
/** Without offload, what a parameter needs on the device at least: itself (ZeRO 1 and 2 shard the rest). */
const LEAST_RESIDENT_BYTES_PER_PARAM = 4;

export interface Budgets {
  deviceMemory: number;
  hostMemory: number;
  diskMemory?: number;
}

/** The arithmetic before any plan: the first member known not to fit, and the member to plan first. */
interface Bounds {
  bound: number;
  guess: number;
  /** Parameters of member k, counted once. */
  paramsOf: (k: number) => number;
  /** Whether the planner may offload model data at these options. */
  offloads: boolean;
  sharding: number;
  processes: number;
  hostPerRank: number;
  disk: number;
}

function searchBounds(family: Family, budgets: Budgets, opts: SearchOptions): Bounds {
  // Each rank's process gets its share of the host; model data is spread over the ranks that shard it.
  const processes = (opts.dp ?? 1) * (opts.tp ?? 1);
  const sharding = (opts.tp ?? 1) * (opts.zero === 3 ? (opts.dp ?? 1) : 1);
  const hostPerRank = Math.floor(budgets.hostMemory / processes);
  const offloads = offloadsModelData({ dp: opts.dp ?? 1, zero: opts.zero ?? 0, gradAccum: opts.gradAccum ?? 1 });
  const memory = sharding * (budgets.deviceMemory + (offloads ? hostPerRank : 0));
  const params = new Map<number, number>();
  const paramsOf = (k: number) => params.get(k) ?? params.set(k, paramCount(family.member(k))).get(k)!;
  if (family.field !== undefined && paramsOf(2) <= paramsOf(1))
    throw new UserError(`the scale rule's field ${family.field} does not add parameters, so the family does not grow`);
  const disk = offloads ? (budgets.diskMemory ?? 0) : 0;
  const least = offloads ? LEAST_BYTES_PER_PARAM : LEAST_RESIDENT_BYTES_PER_PARAM;
  // The first member whose least model data exceeds all memory (a member past the family's end is out too).
  const bound = firstMember(family.size, (k) => least * paramsOf(k) > memory + disk);
  // With a disk tier the guess leaves the disk out: what host and device must hold besides model data
  // (activations moved there, staging) bounds the answer long before a large disk does, and only the
  // planner knows it; a guess filling the disk plans members far too large, slowly. From there it climbs.
  const guess = Math.max(1, firstMember(bound - 1, (k) => BYTES_PER_PARAM * paramsOf(k) > memory) - 1);
  return { bound, guess, paramsOf, offloads, sharding, processes, hostPerRank, disk };
}

/** The most parameters any member could have at these options, from the arithmetic alone (0: none can fit). */
export function mostParams(family: Family, budgets: Budgets, opts: SearchOptions): number {
  const { bound, paramsOf } = searchBounds(family, budgets, opts);
  return bound > 1 ? paramsOf(bound - 1) : 0;
}

export function findCapacity(
  family: Family,
  modelPath: string,
  target: Target,
  budgets: Budgets,
  opts: SearchOptions,
  onProbe: (p: Probe) => void = () => {},
): Capacity {
  const { bound, guess, paramsOf, offloads, sharding, hostPerRank, disk } = searchBounds(family, budgets, opts);

  const probes: Probe[] = [];
  const plans = new Map<number, Plan>();
  const fits = (k: number): boolean => {
    const { probe, plan } = probeMember(family, k, modelPath, target, budgets, opts);
    if (plan) plans.set(k, plan);
    probes.push(probe);
    onProbe(probe);
    return probe.fits;
  };

  // Below a member the host cannot hold: the largest member with enough less model data (at 16 bytes a
  // parameter) to cover what it lacked. Model data held on the device shrinks too, so this can fall short,
  // never overshoot by much: the search goes on from there.
  const belowHostLimit = (k: number): number | undefined => {
    const need = probes.find((p) => p.member === k)?.hostNeed;
    // With a disk tier, what host memory lacks is staging and moved activations, which do not shrink with
    // the parameters: the search steps down as below a device limit.
    if (need === undefined || disk > 0) return undefined;
    const excess = sharding * (need - hostPerRank);
    let j = k - 1;
    while (j > 1 && BYTES_PER_PARAM * (paramsOf(k) - paramsOf(j)) < excess) j--;
    return j;
  };
  // Above two fitting members: where host and disk together fill up, by a straight line through what
  // each plan puts there (model data, and activations moved out of the device, grow with the members).
  const budgetAbove = hostPerRank + (disk > 0 ? disk : 0);
  const used = (plan: Plan) => plan.hostBytes + plan.diskBytes;
  const aboveFitting = (k: number): number | undefined => {
    const below = Math.max(...[...plans.keys()].filter((j) => j < k));
    if (!Number.isFinite(below) || !plans.has(k)) return undefined;
    const slope = (used(plans.get(k)!) - used(plans.get(below)!)) / (k - below);
    if (!(slope > 0)) return undefined;
    return k + Math.floor((budgetAbove - used(plans.get(k)!)) / slope);
  };
  const best = largestFitting(fits, guess, bound, belowHostLimit, aboveFitting);
  if (best === 0) {
    const why =
      probes.find((p) => p.member === 1)?.reason ??
      `its model data alone needs ${offloads ? LEAST_BYTES_PER_PARAM : LEAST_RESIDENT_BYTES_PER_PARAM} bytes a parameter`;
    throw new UserError(`not even the smallest member of the family (${family.label(1)}) fits: ${why}`);
  }
  const next =
    probes.find((p) => p.member === best + 1) ??
    (best + 1 === bound && bound <= family.size
      ? {
          member: bound,
          fits: false,
          lacks: "host" as const,
          seconds: 0,
          reason: !offloads
            ? `its parameters alone (${LEAST_RESIDENT_BYTES_PER_PARAM} bytes a parameter) exceed device memory, ` +
              `and ${flagName("gradAccum")} ${opts.gradAccum} keeps model data on the device (offload is not combined with it yet)`
            : disk > 0
              ? `its parameters and AdamW moments alone (${LEAST_BYTES_PER_PARAM} bytes a parameter) exceed device, host and disk`
              : `its parameters and AdamW moments alone (${LEAST_BYTES_PER_PARAM} bytes a parameter) exceed device plus host memory`,
        }
      : undefined);
  if (next && !probes.includes(next)) probes.push(next);
  return { family, target, ...budgets, member: best, params: paramsOf(best), plan: plans.get(best)!, next, guess, probes };
}

/** Plans member k at these budgets and options: its plan, or the probe saying why it does not fit. */
export function probeMember(
  family: Family,
  k: number,
  modelPath: string,
  target: Target,
  budgets: Budgets,
  opts: SearchOptions,
): { probe: Probe; plan?: Plan } {
  const processes = (opts.dp ?? 1) * (opts.tp ?? 1);
  const r = family.member(k);
  const started = performance.now();
  const seconds = () => (performance.now() - started) / 1000;
  try {
    const plan = compilePlan(r.definition, modelPath, r.config, {
      ...opts,
      batch: r.batch,
      seq: r.seq,
      deviceMemory: budgets.deviceMemory,
      hostMemory: Math.floor(budgets.hostMemory / processes),
      ...(budgets.diskMemory !== undefined && { diskMemory: budgets.diskMemory }),
      machine: target.machine,
    });
    return { probe: { member: k, fits: true, seconds: seconds() }, plan };
  } catch (e) {
    if (e instanceof TraceError) throw new UserError(`${family.label(k)}: ${describeTraceError(e)}`);
    if (!(e instanceof DoesNotFitError)) throw e;
    const probe: Probe = {
      member: k,
      fits: false,
      lacks: e.budget,
      ...(e.hostNeed !== undefined && { hostNeed: e.hostNeed }),
      // The host budget in the planner's message is one rank's.
      reason: e
        .phrase((option) => (option === "hostMemory" && processes > 1 ? `a rank's share of ${flagName(option)}` : flagName(option)))
        .split("\n")[0]
        .replace(/ Largest temporaries:$/, ""),
      seconds: seconds(),
    };
    return { probe };
  }
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

/**
 * The largest k in [1, bound) that fits, or 0: from the guess it steps (1, 2, 4, ... members) towards the
 * answer until a fitting and a failing member bracket it, then bisects. Going down, `estimateBelow(k)`
 * may name the next member to try below a failing k instead of the next step; when that member fits, the
 * search tries the one above it, then steps up as from a fitting guess. Going up, `estimateAbove(k)` may
 * name the member to try above a fitting k (from the plans of k and a fitting member below it); when
 * that member does not fit, the search tries the one below it, then bisects.
 */
function largestFitting(
  fits: (k: number) => boolean,
  guess: number,
  bound: number,
  estimateBelow: (k: number) => number | undefined,
  estimateAbove: (k: number) => number | undefined,
): number {
  let lo = 0; // fits, or 0
  let hi = bound; // does not fit
  /** Steps up from lo while members fit, until one does not or hi is next. */
  const climb = () => {
    for (let step = 1; lo + step < hi; step *= 2) {
      const estimate = estimateAbove(lo);
      // An estimate at or below lo still tries the member above, to confirm it.
      const k = estimate !== undefined ? Math.min(hi - 1, Math.max(lo + 1, estimate)) : lo + step;
      if (fits(k)) {
        lo = k;
        continue;
      }
      hi = k;
      // An estimate that overshot by one is the common case (the line is close where the disk binds); one
      // that overshot by more was bound by something else (the device), and the bisection finds it.
      if (estimate !== undefined && hi - 1 > lo) {
        if (fits(hi - 1)) lo = hi - 1;
        else hi -= 1;
      }
      break;
    }
  };
  if (fits(guess)) {
    lo = guess;
    climb();
  } else {
    hi = guess;
    for (let step = 1; hi - step > lo; step *= 2) {
      const estimate = estimateBelow(hi);
      const k = Math.max(lo + 1, Math.min(hi - 1, estimate ?? hi - step));
      if (fits(k)) {
        lo = k;
        // An estimate lands near the answer: the member above it first, then steps up as from a guess.
        if (estimate !== undefined && lo + 1 < hi) {
          if (fits(lo + 1)) {
            lo += 1;
            climb();
          } else hi = lo + 1;
        }
        break;
      }
      hi = k;
    }
  }
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid;
  }
  return lo;
}
