// `stow capacity` over the choices the user leaves it, as a DeepSpeed or ZeRO-Infinity user expects: the
// global batch (--batch) is the user's, but the micro-batch is an implementation choice, made by
// gradient accumulation (--grad-accum K: the same global batch, the same update), and the width is the
// family's (family.ts, familyWidths). Each width and K is one search (capacity.ts); the answer is the
// largest model over them, ties going to the fewer micro-batches (a faster step), then to the wider
// width. A search is not made when the arithmetic alone (mostParams) says it cannot beat the answer so
// far: at K > 1 the planner keeps model data on the device, so those searches matter only for models
// the device holds whole, where activations bind first. Widths go widest first, and narrower ones are
// not searched once the disk tier is full at the answer (diskFullAt): the disk bounds them alike, and
// their members, of many more layers, take minutes each to plan. --grad-accum or --preset fix their choice.
import { UserError } from "../../base/errors.ts";
import type { Target } from "../targets/target.ts";
import type { Plan } from "../../plan/plan.ts";
import {
  BYTES_PER_PARAM,
  type Budgets,
  type Capacity,
  type Probe,
  type SearchOptions,
  findCapacity,
  mostParams,
  probeMember,
} from "./capacity.ts";
import { type Family, paramCount } from "./family.ts";

/** One width at one number of micro-batches: its answer, or why it was not searched or found nothing. */
export interface Choice {
  family: Family;
  gradAccum: number;
  /** The most parameters the arithmetic allows it (not counted for a width not searched). */
  mostParams?: number;
  /** Plans made for it, and their wall time (a search that found nothing planned too). */
  plans: number;
  seconds: number;
  found?: Capacity;
  /** Why it has no answer: ruled out by the arithmetic, or not even its smallest member fits. */
  reason?: string;
  /** Not searched: whether the answer at the most micro-batches fits here too (fewestMicroBatches). */
  checked?: Probe;
}

export interface Choices {
  best: Capacity;
  choices: Choice[];
}

/** The numbers of micro-batches that split each rank's share of the global batch evenly, fewest first. */
export function gradAccumChoices(globalBatch: number, dp: number): number[] {
  const perRank = globalBatch / dp;
  return Array.from({ length: perRank }, (_, i) => i + 1).filter((k) => perRank % k === 0);
}

export function findLargest(
  widths: Family[],
  gradAccums: number[],
  modelPath: string,
  target: Target,
  budgets: Budgets,
  opts: SearchOptions,
  onProbe: (family: Family, gradAccum: number, p: Probe) => void = () => {},
): Choices {
  const choices: Choice[] = [];
  let best: Capacity | undefined;
  let firstError: UserError | undefined;
  // The arithmetic counts parameters member by member, which at a narrow width up to a large disk's bound
  // takes tens of seconds: a width not searched skips it.
  const choiceOf = (family: Family, gradAccum: number, arithmetic = true): Choice => {
    const most = arithmetic ? mostParams(family, budgets, { ...opts, gradAccum }) : undefined;
    const choice: Choice = { family, gradAccum, ...(most !== undefined && { mostParams: most }), plans: 0, seconds: 0 };
    choices.push(choice);
    return choice;
  };
  const counted = (choice: Choice) => (p: Probe) => {
    if (p.seconds > 0) choice.plans++;
    choice.seconds += p.seconds;
    onProbe(choice.family, choice.gradAccum, p);
  };
  /** The whole search at one width and micro-batch, unless the arithmetic says it cannot beat the best. */
  const search = (family: Family, gradAccum: number): Capacity | undefined => {
    const choice = choiceOf(family, gradAccum);
    if (best !== undefined && choice.mostParams! <= best.params) {
      choice.reason = `at most ${count(choice.mostParams!)} parameters by the arithmetic, not more than the answer's ${count(best.params)}`;
      return undefined;
    }
    try {
      choice.found = findCapacity(family, modelPath, target, budgets, { ...opts, gradAccum }, counted(choice));
      if (best === undefined || choice.found.params > best.params) best = choice.found;
      return choice.found;
    } catch (e) {
      // Not even the smallest member fits at this width and micro-batch: another choice may.
      if (!(e instanceof UserError) || !e.message.startsWith("not even the smallest member")) throw e;
      choice.reason = e.message;
      firstError ??= e;
      return undefined;
    }
  };
  // Widest first: its members have the fewest layers for their parameters, so they plan fastest.
  for (const family of [...widths].reverse()) {
    const full = best !== undefined && diskFullAt(best, budgets);
    if (full) {
      choiceOf(family, gradAccums[0], false).reason =
        `not searched, at any micro-batch: the disk tier is full at the answer (${best!.family.label(best!.member)}` +
        `${widthOf(best!.family)}), and this narrower width is bound by the same disk, in many more layers, each plan slower`;
      continue;
    }
    search(family, gradAccums[0]);
    if (gradAccums.length === 1) continue;
    // The most micro-batches hold the fewest activations: its answer bounds those of the ones between.
    const most = gradAccums.at(-1)!;
    const before = best;
    const top = search(family, most);
    if (top !== undefined && top === best && best !== before)
      best = fewestMicroBatches(top, gradAccums.slice(1, -1), (k) => choiceOf(family, k), counted, modelPath, target, budgets, opts);
  }
  if (best === undefined) throw firstError!;
  return { best, choices };
}

/**
 * The answer at the fewest micro-batches that hold it (a faster step): `found` is the answer at the
 * most, and whether its member fits only improves as micro-batches shrink, so a bisection over the
 * counts between (`between`, ascending) finds the fewest. The member above it is then planned at that
 * count, for the report's next.
 */
function fewestMicroBatches(
  found: Capacity,
  between: number[],
  choiceOf: (gradAccum: number) => Choice,
  counted: (choice: Choice) => (p: Probe) => void,
  modelPath: string,
  target: Target,
  budgets: Budgets,
  opts: SearchOptions,
): Capacity {
  const k = found.member;
  let lo = -1; // the last index known not to hold k (or -1)
  let hi = between.length; // the first index known to hold it (the length: only the most micro-batches do)
  let held: { choice: Choice; probe: Probe; plan: Plan } | undefined;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    const choice = choiceOf(between[mid]);
    const tried = probeMember(found.family, k, modelPath, target, budgets, { ...opts, gradAccum: between[mid] });
    counted(choice)(tried.probe);
    choice.checked = tried.probe;
    if (tried.plan) {
      hi = mid;
      held = { choice, probe: tried.probe, plan: tried.plan };
    } else lo = mid;
  }
  if (held === undefined) return found;
  const at = { ...opts, gradAccum: between[hi] };
  // The member above, planned at this count when it was planned at the most (not ruled out by the arithmetic).
  const next = found.next && found.next.seconds > 0 ? probeMember(found.family, k + 1, modelPath, target, budgets, at).probe : found.next;
  if (next && next.seconds > 0) counted(held.choice)(next);
  const plan = held.plan;
  const probe = held.probe;
  return { ...found, plan, next, guess: k, probes: [probe, ...(next ? [next] : [])] };
}

const count = (n: number) => n.toLocaleString("en-US");
const widthOf = (f: Family) => (f.preset !== undefined ? ` at preset ${f.preset}'s width` : "");

/**
 * Whether the answer's disk tier cannot take the next member's model data (16 bytes a parameter more):
 * the disk, not activations, then bounds every width, and a narrower one could gain little.
 */
function diskFullAt(found: Capacity, budgets: Budgets): boolean {
  if (budgets.diskMemory === undefined || found.plan.diskBytes === 0) return false;
  const more = paramCount(found.family.member(found.member + 1)) - found.params;
  return found.plan.diskBytes + BYTES_PER_PARAM * more > budgets.diskMemory;
}
