// The pipeline from a model definition to a Plan: trace the training and inference programs, run the
// passes in order, and plan memory. Each pass's output is kept so `stow ir --after PASS` can show it.
import { type Graph, formatLoc, valueBytes } from "../../ir/types.ts";
import { type OffloadSchedule, offloadModelData } from "../../ir/passes/offload.ts";
import { type ChunkLayout, finestCapacity, layoutChunks } from "../../ir/passes/chunks.ts";
import { earlyUpdate } from "../../ir/passes/early_update.ts";
import { autodiff } from "../../ir/passes/autodiff.ts";
import { accumulateEmbeddingGrads } from "../../ir/passes/embedding_grad.ts";
import { fuseLmHead } from "../../ir/passes/fuse_lm_head.ts";
import { adamwPass } from "../../ir/passes/adamw.ts";
import { type CheckpointMode, recompute, regionCount } from "../../ir/passes/recompute.ts";
import { isActivationCopy, movedActivations, offloadActivations } from "../../ir/passes/offload_activations.ts";
import { recomputeFlops } from "../../ir/flops.ts";
import { CPU_DEFAULTS, H100_DEFAULTS, type Machine, type MeasuredTimes, type StepTime, simulateStep } from "../../ir/cost_model.ts";
import { type Candidate, type CompileOptions, type CompiledProgram, type Plan, resolveDecisions } from "../../plan/plan.ts";
import { SettingError, type SettingNames } from "../../base/errors.ts";
import { flagName } from "../cli/flag_names.ts";
import { formatBytes } from "../../base/units.ts";
import { type MemoryPlan, type PersistentLayout, persistentLayout, planMemory, residentModelBytes, runsOnHost } from "../../ir/passes/memory_plan.ts";
import { alignUp } from "../../ir/passes/arena_plan.ts";
import type { ModelConfig, ModelDefinition } from "../dsl/model.ts";
import { buildModel, traceProgram } from "./trace_program.ts";
import { ShardError, shard } from "../../ir/passes/shard.ts";
import { shardGradNorm } from "../../ir/passes/shard_grad_norm.ts";
import { TraceError } from "../dsl/trace.ts";

/** The step does not fit the device or host budget: a user error that callers searching for a fit can tell apart. */
export class DoesNotFitError extends SettingError {
  constructor(phrase: (name: SettingNames) => string, readonly budget: "device" | "host", readonly least?: Candidate) {
    super(phrase);
    this.name = "DoesNotFitError";
  }
}

export const PASSES = ["trace", "shard", "fuse", "autodiff", "recompute", "adamw", "early-update", "move-activations", "offload"] as const;

/** Which regions' saved activations move to the host, and how far ahead their copies run. */
export interface Moves {
  count: number;
  lookahead: number;
}
const NO_MOVES: Moves = { count: 0, lookahead: 0 };
/** Lookaheads tried for activation copies; the first is the one the auto search plans with. */
const MOVE_LOOKAHEADS = [1, 0, 2];

/** Bytes a step moves between host and device (0 when model data is resident). */
function transferBytes(g: Graph): number {
  return g.nodes.filter((n) => n.op === "chunk_h2d" || n.op === "copy_d2h").reduce((s, n) => s + valueBytes(n.outputs[0]), 0);
}

export function compilePlan(def: ModelDefinition, modelPath: string, config: ModelConfig, opts: CompileOptions): Plan {
  const model = buildModel(def, config);
  const traced = traceProgram(model, config, { batch: opts.batch, seq: opts.seq, kind: "train" });
  const sharded = shardFor(traced, opts.tp ?? 1);
  // After sharding: under --tp the loss is vocabulary-parallel, and the fusion leaves it alone.
  const fused = fuseLmHead(sharded);
  const differentiated = accumulateEmbeddingGrads(autodiff(fused));
  const inferGraph = shardFor(traceProgram(model, config, { batch: 1, seq: config.seq, kind: "infer" }), opts.tp ?? 1);
  const totalRegions = regionCount(differentiated);

  const decisions = resolveDecisions(opts);
  const leastWaste = layoutChunks(sharded, opts.chunkSize);
  const defaults = opts.machine ?? (opts.backend === "cuda" ? H100_DEFAULTS : CPU_DEFAULTS);
  const machine: Machine = { ...defaults, ...(opts.linkGbps !== undefined && { linkBandwidth: (opts.linkGbps * 1e9) / 8 }) };

  // The schedule searches plan many offload schedules of one training graph, and many of them keep the
  // same chunks resident: the passes before the offload pass, and the inference program, are made once
  // for each and reused. The inference program's plan depends only on the resident chunks: they fix the
  // persistent region's size and the parameters' offsets (the training graph's host copies of gradients
  // and activations come after those), so the first persistent layout given for a resident set serves all.
  const beforeOffload = cached((mode: CheckpointMode, regions: number, moves: Moves) => {
    const recomputed = recompute(differentiated, mode, regions, moves.count);
    const withOptimizer = adamwPass(recomputed, { clip: opts.clip });
    const optimized = earlyUpdate(withOptimizer);
    const moved = offloadActivations(optimized, { regions: new Set(Array.from({ length: moves.count }, (_, i) => i)), lookahead: moves.lookahead });
    return { recomputed, withOptimizer, optimized, moved };
  }, (mode, regions, moves) => `${mode} ${regions} ${moves.count} ${moves.lookahead}`);
  const layoutIds = new Map<ChunkLayout, number>();
  const residentKey = (chunks: ChunkLayout, schedule?: OffloadSchedule) => schedule === undefined ? "all" :
    `${layoutIds.get(chunks) ?? layoutIds.set(chunks, layoutIds.size).get(chunks)} ${[...schedule.resident].sort((a, b) => a - b).join(",")}`;
  const inferFor = cached((chunks: ChunkLayout, schedule: OffloadSchedule | undefined, persistent: PersistentLayout): CompiledProgram => {
    const inferred = schedule ? offloadModelData(inferGraph, chunks, { ...schedule, lookahead: 0, keep: new Set() }) : inferGraph;
    return { graph: inferred, memory: planMemory(inferred, persistent, opts.threads), batch: 1, seq: config.seq };
  }, residentKey);

  const planFor = (
    mode: CheckpointMode, regions?: number, schedule?: OffloadSchedule, chunks = leastWaste, moves = NO_MOVES,
  ) => {
    if (regions === undefined) regions = mode === "blocks" ? totalRegions - moves.count : 0;
    const { recomputed, withOptimizer, optimized, moved } = beforeOffload(mode, regions, moves);
    const g = shardGradNorm(schedule ? offloadModelData(moved, chunks, schedule) : moved);
    const persistent = persistentLayout(g, true, schedule && { chunks, resident: schedule.resident });
    const train = { graph: g, memory: planMemory(g, persistent, opts.threads), batch: opts.batch, seq: opts.seq };
    const infer = inferFor(chunks, schedule, persistent);
    const arenaBytes = alignUp(persistent.bytes + Math.max(train.memory.dynamicBytes, infer.memory.dynamicBytes));
    // The step is played out when its time is first asked for: a search judges most plans by memory alone.
    let predicted: StepTime | undefined;
    const checkpoint: Candidate = {
      mode, regions, totalRegions, offload: schedule !== undefined, schedule, transferBytes: transferBytes(g),
      moved: moves.count, moveLookahead: moves.lookahead,
      movedBytes: g.nodes.filter((n) => n.op === "copy_d2h" && isActivationCopy(n)).reduce((s, n) => s + valueBytes(n.outputs[0]), 0),
      chunkLoads: g.nodes.filter((n) => n.op === "chunk_h2d" && !isActivationCopy(n)).length,
      get predicted() {
        return (predicted ??= simulateStep(g, machine, (n) => runsOnHost(n, train.memory), opts.measured));
      },
      peak: train.memory.peak, arenaBytes, recomputeFlops: recomputeFlops(g),
    };
    const stages = [
      { name: "trace", graph: traced }, { name: "shard", graph: sharded }, { name: "fuse", graph: fused },
      { name: "autodiff", graph: differentiated },
      { name: "recompute", graph: recomputed }, { name: "adamw", graph: withOptimizer },
      { name: "early-update", graph: optimized }, { name: "move-activations", graph: moved }, { name: "offload", graph: g },
    ];
    return {
      modelPath, config, decisions, persistent, train, infer, arenaBytes, hostBytes: persistent.hostBytes, chunks, stages,
      checkpoint, machine,
    };
  };

  if (opts.checkpointRegions !== undefined && opts.checkpointRegions > totalRegions)
    throw new SettingError((name) => `${name("checkpoint")} blocks:${opts.checkpointRegions}: the model marks only ${totalRegions} checkpoint regions`);
  const moveCount = opts.moveActivations ?? 0;
  checkMoves(opts, moveCount, totalRegions);
  const budget = opts.deviceMemory;
  const fits = (p: { arenaBytes: number }) => budget === undefined || p.arenaBytes <= budget;
  const fitsBoth = (p: { arenaBytes: number; hostBytes: number }) => fits(p) && p.hostBytes <= (opts.hostMemory ?? Infinity);
  const regionsFlag = opts.checkpoint === "blocks" ? opts.checkpointRegions : undefined;
  // Model data stays on the device when the budget allows; otherwise chunks of it move to the host.
  let residentPlans: ReturnType<typeof planFor>[];
  if (opts.checkpoint === "auto") {
    const base = autoCandidates((m, r) => planFor(m, r), totalRegions, budget);
    // Moving activations cannot help when the budget does not even hold the model data.
    const moving = budget === undefined || base[0].persistent.bytes >= budget ? [] : moveCandidates(
      (moves, recomputed) => planFor(recomputed > 0 ? "blocks" : "none", recomputed, undefined, leastWaste, moves), base, totalRegions, fitsBoth);
    residentPlans = [...base, ...moving];
  } else {
    // Forced moves: the activation lookahead that fits and is predicted fastest.
    const options = moveCount === 0 ? [NO_MOVES] : MOVE_LOOKAHEADS.map((lookahead) => ({ count: moveCount, lookahead }));
    residentPlans = [fastest(options.map((m) => planFor(opts.checkpoint as CheckpointMode, regionsFlag, undefined, leastWaste, m)), fitsBoth)];
  }
  const forcedMoves: Moves = { count: moveCount, lookahead: residentPlans[0].checkpoint.moveLookahead };
  let plans = residentPlans;
  // A schedule whose resident model data alone exceeds the budget cannot fit: the search need not plan it.
  const residentTooLarge = (chunks: ChunkLayout) => (s: OffloadSchedule) =>
    budget !== undefined && residentModelBytes(sharded.params, { chunks, resident: s.resident }) > budget;
  // Model data moves only when no plan that keeps it fits, and under auto also when the plans that do
  // fit all move activations: those use the link too, so offloaded plans then compete on predicted time.
  const settled = (p: ReturnType<typeof planFor>) => fits(p) && (opts.checkpoint !== "auto" || p.checkpoint.moved === 0);
  if (!plans.some(settled)) {
    const modes: [CheckpointMode, number | undefined][] = opts.checkpoint === "auto"
      ? [["none", undefined], ["selective", undefined], ["blocks", undefined]]
      : [[opts.checkpoint, regionsFlag]];
    // The least-waste chunks first; if nothing fits, the finest chunking (each chunk as small as the
    // largest parameter allows), which holds the least on the device at a time.
    const layouts = opts.chunkSize === undefined ? [leastWaste, layoutChunks(sharded, finestCapacity(sharded), "finest")] : [leastWaste];
    for (const chunks of layouts) {
      if (plans.some((p) => p.checkpoint.offload && fits(p))) break;
      for (const [mode, regions] of modes)
        plans = [...plans, searchSchedule(chunks.chunks.length, (s) => planFor(mode, regions, s, chunks, forcedMoves), fits, residentTooLarge(chunks))];
      // Under auto, two more schedule searches (each costs many plans): as many blocks' activations
      // moved as the link has time for beside the model data, the rest kept or recomputed. Moving frees
      // device memory that can keep model data resident, so it can pay even where nothing was recomputed.
      // Copies just in time: they hold the least, and memory is what is short here.
      const moved = opts.checkpoint === "auto" ? movesWithinSlack(plans.filter(fits), savedBytesPerRegion(differentiated), machine) : 0;
      if (moved > 0)
        for (const mode of ["none", "blocks"] as const)
          plans = [...plans, searchSchedule(chunks.chunks.length, (s) => planFor(mode, undefined, s, chunks, { count: moved, lookahead: 0 }), fits, residentTooLarge(chunks))];
    }
  }
  const chosen = choosePlan(plans, opts);
  return { ...chosen, candidates: plans.map((p) => p.checkpoint) };
}

/** `make`, remembering its result for each key. */
function cached<A extends unknown[], R>(make: (...args: A) => R, key: (...args: A) => string): (...args: A) => R {
  const results = new Map<string, R>();
  return (...args) => {
    const k = key(...args);
    if (!results.has(k)) results.set(k, make(...args));
    return results.get(k)!;
  };
}

/** Bytes of saved activations a checkpoint region hands to the backward, on average over the regions. */
function savedBytesPerRegion(g: Graph): number {
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
function movesWithinSlack<P extends { checkpoint: Candidate }>(fitting: P[], bytesPerRegion: number, machine: Machine): number {
  const offloaded = fitting.filter((p) => p.checkpoint.offload);
  if (offloaded.length === 0 || bytesPerRegion === 0) return 0;
  const best = offloaded.reduce((a, b) => (b.checkpoint.predicted.seconds < a.checkpoint.predicted.seconds ? b : a)).checkpoint;
  if (best.moved > 0) return 0;
  const slack = best.predicted.computeSeconds - best.predicted.linkSeconds;
  const perRegion = (2 * bytesPerRegion) / machine.linkBandwidth;
  // The last block's values are needed right after they are made: moving it gains nothing.
  return Math.max(0, Math.min(best.totalRegions - 1, Math.floor(slack / perRegion)));
}

/** --move-activations K: K regions exist, and with --checkpoint blocks:R the two together do too. */
function checkMoves(opts: CompileOptions, moves: number, totalRegions: number): void {
  if (opts.moveActivations === undefined) return;
  if (opts.checkpoint === "auto")
    throw new SettingError((name) => `${name("moveActivations")}: ${name("checkpoint")} auto chooses which activations move; give one or the other`);
  const recomputed = opts.checkpoint === "blocks" ? opts.checkpointRegions ?? 0 : 0;
  if (moves + recomputed > totalRegions)
    throw new SettingError((name) => `${name("moveActivations")} ${moves}${recomputed > 0 ? ` with ${name("checkpoint")} blocks:${recomputed}` : ""}: ` +
      `the model marks only ${totalRegions} checkpoint regions`);
}

/** Of plans, the one predicted fastest among those that fit, or, when none fits, the smallest. */
function fastest<P extends { arenaBytes: number; hostBytes: number; checkpoint: Candidate }>(plans: P[], fits: (p: P) => boolean): P {
  const fitting = plans.filter(fits);
  if (fitting.length === 0) return plans.reduce((a, b) => (b.arenaBytes < a.arenaBytes ? b : a));
  return fitting.reduce((a, b) => (b.checkpoint.predicted.seconds < a.checkpoint.predicted.seconds ? b : a));
}

/** The graph each of `ranks` tensor-parallel ranks runs; a graph that cannot be cut is a model error. */
function shardFor(g: Graph, ranks: number): Graph {
  try {
    return shard(g, ranks);
  } catch (e) {
    if (e instanceof ShardError) throw new TraceError(e.phrase(flagName), e.loc);
    throw e;
  }
}

/**
 * The offload schedule for one checkpoint mode, with the memory planner as the judge of what fits and
 * the cost model of what is fastest. For each lookahead (how many loads ahead copies start), it keeps
 * as many chunks resident as fit (in `residencyOrder`), then keeps as many forward copies for the
 * backward as fit (those whose next use is nearest first); of these schedules, the one with the least
 * predicted step time wins. Returns the all-offloaded, just-in-time plan when nothing fits, so the
 * caller can say how much memory it needs.
 */
function searchSchedule<P extends { arenaBytes: number; checkpoint: Candidate; train: CompiledProgram }>(
  chunkCount: number, planWith: (s: OffloadSchedule) => P, fits: (p: P) => boolean, cannotFit: (s: OffloadSchedule) => boolean,
): P {
  const firstOf = (k: number, of: readonly number[]) => new Set(of.slice(0, k));
  /** The largest k in [lo, hi] whose plan fits, given that lo's does; with its plan. */
  const largestFitting = (lo: number, hi: number, loPlan: P, make: (k: number) => OffloadSchedule): [number, P] => {
    let best = loPlan;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      const schedule = make(mid);
      const p = cannotFit(schedule) ? undefined : planWith(schedule);
      if (p !== undefined && fits(p)) [lo, best] = [mid, p];
      else hi = mid - 1;
    }
    return [lo, best];
  };
  const justInTime = planWith({ resident: new Set(), lookahead: 0, keep: new Set() });
  if (!fits(justInTime)) return justInTime;
  const order = residencyOrder(justInTime.train, chunkCount);
  const loads = justInTime.checkpoint.chunkLoads;
  let best = justInTime;
  for (let lookahead = 0; lookahead <= Math.min(MAX_LOOKAHEAD, loads - 1); lookahead++) {
    const bare: OffloadSchedule = { resident: new Set(), lookahead, keep: new Set() };
    const barePlan = lookahead === 0 ? justInTime : planWith(bare);
    if (!fits(barePlan)) break;
    // All chunks resident is the resident plan, which did not fit.
    const [r, residentPlan] = largestFitting(0, chunkCount - 1, barePlan, (k) => ({ ...bare, resident: firstOf(k, order) }));
    const withResident = { ...bare, resident: firstOf(r, order) };
    const offloaded = order.filter((c) => !withResident.resident.has(c));
    const [, plan] = largestFitting(0, offloaded.length, residentPlan, (k) => ({ ...withResident, keep: firstOf(k, offloaded) }));
    if (plan.checkpoint.predicted.seconds < best.checkpoint.predicted.seconds) best = plan;
  }
  return best;
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
  for (const b of justInTime.memory.buffers)
    if (b.node.op === "chunk_h2d") liveNodes[b.node.attrs.chunk as number] += b.end - b.start + 1;
  const mostlyLive = (c: number) => liveNodes[c] > justInTime.graph.nodes.length / 2;
  const reversed = Array.from({ length: chunkCount }, (_, i) => chunkCount - 1 - i);
  return [...reversed.filter(mostlyLive), ...reversed.filter((c) => !mostlyLive(c))];
}

/** Copies further ahead than this rarely help: the link is busy with the nearer ones. */
const MAX_LOOKAHEAD = 3;

/**
 * The plans --checkpoint auto weighs: none, selective, all blocks, and, when only blocks fit, the fewest
 * blocks that fit (binary search: memory falls and recompute grows with each block recomputed).
 */
function autoCandidates<P extends { checkpoint: Candidate }>(
  planFor: (mode: CheckpointMode, regions?: number) => P, totalRegions: number, budget: number | undefined,
): P[] {
  const plans = [planFor("none"), planFor("selective"), planFor("blocks")];
  const fits = (p: P) => budget !== undefined && p.checkpoint.arenaBytes <= budget;
  if (budget === undefined || fits(plans[0]) || fits(plans[1]) || !fits(plans[2])) return plans;
  let [lo, hi] = [1, totalRegions]; // blocks(hi) fits
  let best = plans[2];
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    const p = planFor("blocks", mid);
    if (fits(p)) [hi, best] = [mid, p];
    else lo = mid + 1;
  }
  return best === plans[2] ? plans : [...plans, best];
}

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
function moveCandidates<P extends { arenaBytes: number; hostBytes: number; checkpoint: Candidate }>(
  planWith: (moves: Moves, recomputed: number) => P, base: P[], totalRegions: number, fits: (p: P) => boolean,
): P[] {
  if (totalRegions === 0 || fits(base[0])) return [];
  const fittingBlocks = base.filter((p) => p.checkpoint.mode === "blocks" && fits(p));
  // When no resident plan fits, one check (every block moved, copies just in time: the least device
  // memory moving can reach) rules moving out before any search.
  if (!base.some(fits) && !fits(planWith({ count: totalRegions, lookahead: 0 }, 0))) return [];
  let recomputed = fittingBlocks.length > 0 ? Math.min(...fittingBlocks.map((p) => p.checkpoint.regions)) : totalRegions;
  // Copies a block ahead overlap best; just in time holds the least memory, for when that does not fit.
  const [ahead, justInTime] = [MOVE_LOOKAHEADS[0], 0];
  const planAt = (moved: number, r: number): P => {
    const plan = planWith({ count: moved, lookahead: ahead }, r);
    if (fits(plan)) return plan;
    const tight = planWith({ count: moved, lookahead: justInTime }, r);
    return fits(tight) ? tight : plan;
  };
  const found: P[] = [];
  let best: P | undefined;
  for (let moved = 1; moved <= totalRegions; moved++) {
    let r = Math.min(recomputed, totalRegions - moved);
    let plan = planAt(moved, r);
    if (!fits(plan)) {
      if (r === totalRegions - moved) continue;
      r = totalRegions - moved;
      plan = planAt(moved, r);
      if (!fits(plan)) continue;
    }
    while (r > 0) {
      const fewer = planAt(moved, r - 1);
      if (!fits(fewer)) break;
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
    .map((l) => planWith({ count: moved, lookahead: l }, regions)).filter(fits);
  return [...found, ...others];
}

/** The plan to run: the requested mode, or under auto the least predicted step time among those that fit. */
function choosePlan<P extends { checkpoint: Candidate; train: CompiledProgram; persistent: PersistentLayout; hostBytes: number }>(
  plans: P[], opts: CompileOptions,
): P {
  const budget = opts.deviceMemory;
  if (budget === undefined) {
    if (opts.checkpoint === "auto") throw new SettingError((name) => `${name("checkpoint")} auto needs a budget to fit: give ${name("deviceMemory")}`);
    return plans[0];
  }
  const hostBudget = opts.hostMemory ?? Infinity;
  const fitting = plans.filter((p) => p.checkpoint.arenaBytes <= budget && p.hostBytes <= hostBudget);
  // The least predicted step time (recompute, activations and model data moved over the link all show
  // in it), then the least recompute, the least traffic and the least memory. Offloaded plans are only
  // here when no plan that keeps model data on the device and moves nothing fits.
  const cost = (c: Candidate) => [c.predicted.seconds, c.recomputeFlops, c.transferBytes, c.arenaBytes];
  // Times that differ only by rounding (the same work summed in another order) are a tie.
  const differ = (x: number, y: number) => Math.abs(x - y) > 1e-9 * Math.max(Math.abs(x), Math.abs(y));
  const cheaper = (a: Candidate, b: Candidate) => {
    const [x, y] = [cost(a), cost(b)];
    const i = x.findIndex((v, k) => differ(v, y[k]));
    return i >= 0 && x[i] < y[i];
  };
  if (fitting.length > 0) return fitting.reduce((best, p) => (cheaper(p.checkpoint, best.checkpoint) ? p : best));
  const offloaded = plans.filter((p) => p.checkpoint.offload && p.checkpoint.arenaBytes <= budget);
  if (offloaded.length > 0) {
    const smallest = Math.min(...offloaded.map((p) => p.hostBytes));
    throw new DoesNotFitError((name) => `the model data does not fit in ${name("hostMemory")} ${formatBytes(hostBudget)}: offloaded to the host, ` +
      `parameters, gradients and AdamW states need ${formatBytes(smallest)} (${smallest} bytes)`, "host");
  }
  const least = plans.reduce((best, p) => (p.checkpoint.arenaBytes < best.checkpoint.arenaBytes ? p : best));
  const consumers = [...least.train.memory.buffers].sort((a, b) => b.bytes - a.bytes).slice(0, 5)
    .map((b) => `  ${formatBytes(b.bytes).padStart(10)}  ${b.kind} from ${b.node.op} at ${formatLoc(b.node.loc)}`);
  throw new DoesNotFitError((name) =>
    `the step does not fit in ${name("deviceMemory")} ${formatBytes(budget)}: it needs at least ` +
    `${formatBytes(least.checkpoint.arenaBytes)} (${least.checkpoint.arenaBytes} bytes, with ${name("checkpoint")} ${least.checkpoint.mode}` +
    `${least.checkpoint.offload ? " and model data offloaded to the host" : ""}). Largest temporaries:\n${consumers.join("\n")}`, "device",
    least.checkpoint);
}
