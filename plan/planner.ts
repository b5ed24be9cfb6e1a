// From the traced training and inference programs to the Plan: the search over checkpoint modes, moved
// activations and offload schedules (plan/strategies/, one file each), each candidate made by running
// the pass pipeline (plan/pipeline.ts) and planning its memory, and the choice among them (choose.ts).
import { type Graph, valueBytes } from "../ir/types.ts";
import { type OffloadSchedule, offloadModelData } from "../ir/passes/offload.ts";
import { type ChunkLayout, type ZeroSharding, finestCapacity, layoutChunks, shardElements } from "../ir/passes/chunks.ts";
import { gatherParams } from "../ir/passes/gather_params.ts";
import { overlapCollectives } from "../ir/passes/overlap_collectives.ts";
import { type CheckpointMode, regionCount } from "../ir/passes/recompute.ts";
import { recomputeFlops } from "../ir/flops.ts";
import { type Machine, type StepTime, simulateStep } from "../ir/cost_model.ts";
import { type PersistentLayout, persistentLayout, planMemory, planMemoryWithin, residentModelBytes } from "../ir/passes/memory_plan.ts";
import { alignUp } from "../ir/passes/arena_plan.ts";
import { SettingError } from "../base/errors.ts";
import type { ModelConfig } from "../src/dsl/model.ts";
import { type Budgets, deviceOnly, fits } from "./fits.ts";
import { placeOnDisk } from "./disk_tier.ts";
import { type Moves, NO_MOVES, type PassSettings, Pipeline } from "./pipeline.ts";
import {
  type Candidate,
  type CompileOptions,
  type CompiledProgram,
  type Plan,
  type PlanCandidate,
  type PlanDecisions,
  meshOf,
  offloadsModelData,
  resolveDecisions,
} from "./plan.ts";
import { choosePlan } from "./choose.ts";
import { backendCaps } from "./backends.ts";
import { checkpointModes } from "./strategies/checkpoint_modes.ts";
import { activationMoves } from "./strategies/activation_moves.ts";
import { forcedMode } from "./strategies/forced_mode.ts";
import { type Counts, type SchedulePlans, offloadSchedule } from "./strategies/offload_schedule.ts";
import { movesWithinSlack, savedBytesPerRegion } from "./strategies/moves_beside_offload.ts";
import { kernelTiles } from "./strategies/kernel_tiles.ts";
import { smallerLmHeadTiles } from "../ir/passes/fuse_lm_head.ts";
import { lmHeadDims, lmHeadWorkspace } from "../ir/ops.ts";

/** The programs a plan compiles, as traced from the model. */
export interface TracedPrograms {
  train: Graph;
  infer: Graph;
}

/**
 * What a step moves between host and device: all bytes (0 when model data is resident), the saved
 * activations' bytes moved out, and the copies of model data chunks in.
 */
function trafficOf(g: Graph): { transferBytes: number; movedBytes: number; chunkLoads: number } {
  let [transferBytes, movedBytes, chunkLoads] = [0, 0, 0];
  for (const n of g.nodes) {
    if (n.op !== "chunk_h2d" && n.op !== "copy_d2h") continue;
    const bytes = valueBytes(n.outputs[0]);
    transferBytes += bytes;
    if (n.op === "copy_d2h" && n.payload === "activation") movedBytes += bytes;
    if (n.op === "chunk_h2d" && n.payload === "model") chunkLoads++;
  }
  return { transferBytes, movedBytes, chunkLoads };
}

export function planTraining(traced: TracedPrograms, modelPath: string, config: ModelConfig, opts: CompileOptions): Plan {
  const decisions = resolveDecisions(opts);
  const pipeline = new Pipeline(traced.train);
  const base: PassSettings = {
    ranks: decisions.ranks,
    dp: decisions.dp,
    gradAccum: decisions.gradAccum,
    clip: decisions.clip,
    fusion: decisions.fusion,
    mode: "none",
    regions: 0,
    moves: NO_MOVES,
  };
  // The fused LM head's tile: the default unless it keeps every plan from fitting the device budget.
  const head = pipeline.after("fuse", base).nodes.find((n) => n.op === "linear_cross_entropy");
  const dims = head && lmHeadDims(head.inputs, head.attrs);
  return kernelTiles(
    (tile) => planWith(pipeline, traced, modelPath, config, opts, decisions, { ...base, ...(tile && { lmHeadTile: tile }) }),
    dims ? smallerLmHeadTiles(dims.N, dims.V) : [],
    (t) => (dims ? lmHeadWorkspace(dims) - lmHeadWorkspace(t) : 0),
    decisions.deviceBudget,
  );
}

/** The search with the pass settings `base` (ranks, clipping, kernel tiles). */
function planWith(
  pipeline: Pipeline,
  traced: TracedPrograms,
  modelPath: string,
  config: ModelConfig,
  opts: CompileOptions,
  decisions: PlanDecisions,
  settings: PassSettings,
): Plan {
  let base = settings;
  const budgets: Budgets = { device: decisions.deviceBudget, host: decisions.hostBudget, disk: decisions.diskBudget };
  // The runtime's disk tier keeps whole, unsharded moments, for one process.
  if (budgets.disk !== undefined && (decisions.ranks > 1 || decisions.dp > 1))
    throw new SettingError((name) => `${name("diskMemory")} is not combined with ${name("tp")} or ${name("dp")} yet`);
  const sharded = pipeline.after("shard", base);
  const totalRegions = regionCount(pipeline.after("autodiff", base));
  const shardedInfer = new Pipeline(traced.infer).after("shard", base);

  // ZeRO 2 and 3 sum the gradient norm from chunk shards: under --tp, parts and whole parameters apart.
  const leastWaste = layoutChunks(sharded, opts.chunkSize, "given", decisions.zero >= 2 && decisions.ranks > 1);
  // ZeRO shards the moments of these chunks over the data-parallel ranks (ir/passes/adamw.ts).
  const zero = decisions.zero > 0 ? { stage: decisions.zero as 1 | 2 | 3, ranks: decisions.dp, chunks: leastWaste } : undefined;
  if (zero) base = { ...base, zero };
  // At ZeRO 3 no rank holds a whole parameter: generation gathers each chunk as the step's forward does,
  // each gather where it is needed and waited for at once (generation does not overlap them).
  const inferGraph = zero?.stage === 3 ? overlapCollectives(gatherParams(shardedInfer, zero, 0), false) : shardedInfer;
  const defaults = opts.machine ?? backendCaps(decisions.backend).defaultMachine;
  const machine: Machine = { ...defaults, ...(opts.linkGbps !== undefined && { linkBandwidth: (opts.linkGbps * 1e9) / 8 }) };

  // The inference program's plan depends only on the resident chunks: they fix the persistent region's
  // size and the parameters' offsets (the training graph's host copies of gradients and activations come
  // after those), so the first persistent layout given for a resident set serves all.
  const layoutIds = new Map<ChunkLayout, number>();
  const residentKey = (chunks: ChunkLayout, schedule?: OffloadSchedule) =>
    schedule === undefined
      ? "all"
      : `${layoutIds.get(chunks) ?? layoutIds.set(chunks, layoutIds.size).get(chunks)} ${[...schedule.resident].sort((a, b) => a - b).join(",")}`;
  const inferFor = cached((chunks: ChunkLayout, schedule: OffloadSchedule | undefined, persistent: PersistentLayout): CompiledProgram => {
    const inferred = schedule ? offloadModelData(inferGraph, chunks, { ...schedule, lookahead: 0, keep: new Set() }, zero) : inferGraph;
    return { graph: inferred, memory: planMemory(inferred, persistent, decisions.threads), batch: 1, seq: config.seq };
  }, residentKey);

  const onDevice = deviceOnly(budgets);
  const fitsDevice = (p: PlanCandidate) => fits(p, onDevice);
  // Every data-parallel step has collectives to split: ZeRO 0 and 1's gradient all-reduces, 2 and 3's chunks'.
  const splitsCollectives = decisions.dp > 1;
  const mayOverlap = splitsCollectives && decisions.overlap;
  type PlanArgs = [mode: CheckpointMode, regions?: number, schedule?: OffloadSchedule, chunks?: ChunkLayout, moves?: Moves];
  // One candidate, or, given a device ceiling, undefined as soon as planning finds its arena exceeds that.
  const candidateWith = (
    ceiling: number,
    overlap: boolean,
    gatherLookahead: number,
    mode: CheckpointMode,
    regions?: number,
    schedule?: OffloadSchedule,
    chunks = leastWaste,
    moves = NO_MOVES,
  ): PlanCandidate | undefined => {
    if (regions === undefined) regions = mode === "blocks" ? totalRegions - moves.count : 0;
    const settings: PassSettings = {
      ...base,
      mode,
      regions,
      moves,
      overlapCollectives: overlap,
      gatherLookahead,
      ...(schedule && { offload: { chunks, schedule } }),
    };
    const stages = pipeline.stages("offload", settings);
    const g = stages[stages.length - 1].graph;
    const offloaded = schedule && { chunks, resident: schedule.resident };
    let persistent = persistentLayout(g, true, offloaded, zero);
    // Host memory too small for the offloaded model data: with a disk tier, moments and then parameters go to disk.
    if (offloaded && budgets.disk !== undefined && budgets.host !== undefined && persistent.hostBytes > budgets.host)
      persistent = placeOnDisk(g, offloaded, (o) => persistentLayout(g, true, o, zero), budgets.host);
    const memory = planMemoryWithin(g, persistent, decisions.threads, ceiling - persistent.bytes);
    if (memory === undefined) return undefined;
    const train = { graph: g, memory, batch: opts.batch / decisions.dp, seq: opts.seq };
    const infer = inferFor(chunks, schedule, persistent);
    const arenaBytes = alignUp(persistent.bytes + Math.max(train.memory.dynamicBytes, infer.memory.dynamicBytes));
    // The step is played out, and its traffic and recompute counted, when first asked for: a search
    // judges most plans by memory alone.
    let predicted: StepTime | undefined;
    let traffic: { transferBytes: number; movedBytes: number; chunkLoads: number } | undefined;
    const counted = () => (traffic ??= trafficOf(g));
    let recomputed: number | undefined;
    const checkpoint: Candidate = {
      mode,
      regions,
      totalRegions,
      offload: schedule !== undefined,
      schedule,
      get transferBytes() {
        return counted().transferBytes;
      },
      moved: moves.count,
      moveLookahead: moves.lookahead,
      overlapsCollectives: overlap && splitsCollectives,
      gatherLookahead,
      movesCheckpointsOnly: moves.checkpointsOnly === true,
      get movedBytes() {
        return counted().movedBytes;
      },
      get chunkLoads() {
        return counted().chunkLoads;
      },
      get predicted() {
        return (predicted ??= simulateStep(g, machine, {
          measured: opts.measured,
          mesh: meshOf(decisions),
          diskIo: train.memory.diskIo,
        }));
      },
      peak: train.memory.peak,
      arenaBytes,
      get recomputeFlops() {
        return (recomputed ??= recomputeFlops(g));
      },
    };
    return {
      modelPath,
      config,
      decisions,
      persistent,
      train,
      infer,
      arenaBytes,
      hostBytes: persistent.hostBytes,
      diskBytes: persistent.diskBytes,
      chunks,
      stages,
      checkpoint,
      machine,
    };
  };
  // Data parallelism's collectives overlap compute where the step still fits with their buffers held longer
  // (ir/passes/overlap_collectives.ts); at ZeRO 3 each gather starts 1 or 2 gathers ahead, whichever
  // fits and the cost model predicts faster (the nearer on a tie). Otherwise each blocks, and a gather
  // starts where it is needed: nothing is gained by holding it earlier, and the step holds the least.
  // Given a device ceiling, undefined when even the blocking plan's arena exceeds it.
  const planWithin = (ceiling: number, ...args: PlanArgs): PlanCandidate | undefined => {
    const blocking = () => candidateWith(ceiling, false, 0, ...args);
    if (!mayOverlap) return blocking();
    const lookaheads = zero?.stage === 3 ? GATHER_LOOKAHEADS : [GATHER_LOOKAHEADS[0]];
    const overlapped = lookaheads.map((l) => candidateWith(ceiling, true, l, ...args));
    const fitting = overlapped.filter((p): p is PlanCandidate => p !== undefined && fitsDevice(p));
    if (fitting.length > 0)
      return fitting.reduce((best, p) => (p.checkpoint.predicted.seconds < best.checkpoint.predicted.seconds ? p : best));
    const least = blocking();
    if (least === undefined || fitsDevice(least)) return least;
    return overlapped[0] ?? least;
  };
  const planFor = (...args: PlanArgs): PlanCandidate => planWithin(Infinity, ...args)!;
  // An offload schedule search's plans: each probe is wanted only when it fits the device budget.
  const scheduled = (mode: CheckpointMode, regions: number | undefined, chunks: ChunkLayout, moves: Moves): SchedulePlans => ({
    plan: (s) => planFor(mode, regions, s, chunks, moves),
    probe: (s) => planWithin(budgets.device ?? Infinity, mode, regions, s, chunks, moves),
  });

  if (opts.checkpointRegions !== undefined && opts.checkpointRegions > totalRegions)
    throw new SettingError(
      (name) => `${name("checkpoint")} blocks:${opts.checkpointRegions}: the model marks only ${totalRegions} checkpoint regions`,
    );
  const moveCount = opts.moveActivations ?? 0;
  checkMoves(opts, moveCount, totalRegions);
  // Moving activations of an unrolled step (grad_accum.ts) is not planned yet: its regions repeat.
  if (moveCount > 0 && decisions.gradAccum > 1)
    throw new SettingError(
      (name) =>
        `${name("moveActivations")} is not combined with ${name("gradAccum")} yet: recompute (${name("checkpoint")} blocks) instead`,
    );
  const regionsFlag = opts.checkpoint === "blocks" ? opts.checkpointRegions : undefined;
  // Model data stays on the device when the budget allows; otherwise chunks of it move to the host.
  let residentPlans: PlanCandidate[];
  if (opts.checkpoint === "auto") {
    const modes = checkpointModes((m, r) => planFor(m, r), totalRegions, budgets);
    // Moving activations cannot help when the budget does not even hold the model data.
    const moving =
      budgets.device === undefined || modes[0].persistent.bytes >= budgets.device || decisions.gradAccum > 1
        ? []
        : activationMoves(
            (moves, recomputed) => planFor(recomputed > 0 ? "blocks" : "none", recomputed, undefined, leastWaste, moves),
            modes,
            totalRegions,
            budgets,
          );
    residentPlans = [...modes, ...moving];
  } else {
    const mode = opts.checkpoint;
    residentPlans = forcedMode((m, r, moves) => planFor(m, r, undefined, leastWaste, moves), mode, regionsFlag, moveCount, budgets);
  }
  const forcedMoves: Moves = { count: moveCount, lookahead: residentPlans[0].checkpoint.moveLookahead };
  let plans = residentPlans;
  // A schedule whose resident model data alone exceeds the budget cannot fit: the search need not plan it.
  // What each schedule search found, per chunk layout and lookahead: the next search's guesses.
  const counts = new Map<ChunkLayout, Map<number, Counts>>();
  const foundCounts = (chunks: ChunkLayout) => counts.get(chunks) ?? counts.set(chunks, new Map()).get(chunks)!;
  const residentTooLarge = (chunks: ChunkLayout) => (s: OffloadSchedule) =>
    budgets.device !== undefined && residentModelBytes(sharded.params, { chunks, resident: s.resident }, zero) > budgets.device;
  // Model data moves only when no plan that keeps it fits, and under auto also when the plans that do
  // fit all move activations: those use the link too, so offloaded plans then compete on predicted time.
  const settled = (p: PlanCandidate) => fitsDevice(p) && (opts.checkpoint !== "auto" || p.checkpoint.moved === 0);
  const mayOffload = offloadsModelData(decisions);
  // Finer chunks may be tried unless --chunk-size fixes them, or ZeRO shards in the least-waste ones
  // (the graph's gathers and updates are per chunk of those).
  const finerChunks = opts.chunkSize === undefined && zero === undefined;
  if (mayOffload && !plans.some(settled)) {
    const modes: [CheckpointMode, number | undefined][] =
      opts.checkpoint === "auto"
        ? [
            ["none", undefined],
            ["selective", undefined],
            ["blocks", undefined],
          ]
        : [[opts.checkpoint, regionsFlag]];
    // The least-waste chunks first; if nothing fits, the finest chunking (each chunk as small as the
    // largest parameter allows), which holds the least on the device at a time.
    const layouts = finerChunks ? [leastWaste, layoutChunks(sharded, finestCapacity(sharded), "finest")] : [leastWaste];
    for (const chunks of layouts) {
      if (plans.some((p) => p.checkpoint.offload && fitsDevice(p))) break;
      for (const [mode, regions] of modes)
        plans = [
          ...plans,
          ...offloadSchedule(
            chunkBytes(chunks, zero),
            scheduled(mode, regions, chunks, forcedMoves),
            budgets,
            residentTooLarge(chunks),
            foundCounts(chunks),
          ),
        ];
      // Under auto, two more schedule searches (each costs many plans): as many blocks' activations
      // moved as the link has time for beside the model data, the rest kept or recomputed. Moving frees
      // device memory that can keep model data resident, so it can pay even where nothing was recomputed.
      // Copies just in time: they hold the least, and memory is what is short here.
      const moved =
        opts.checkpoint === "auto"
          ? movesWithinSlack(plans.filter(fitsDevice), savedBytesPerRegion(pipeline.after("autodiff", base)), machine)
          : 0;
      if (moved > 0)
        for (const mode of ["none", "blocks"] as const)
          plans = [
            ...plans,
            ...offloadSchedule(
              chunkBytes(chunks, zero),
              scheduled(mode, undefined, chunks, { count: moved, lookahead: 0 }),
              budgets,
              residentTooLarge(chunks),
              foundCounts(chunks),
            ),
          ];
    }
  }
  // Under auto, when still nothing fits, memory is all that is short: a last schedule search with every
  // block's activations moved as well as the model data (the least a plan holds on the device), in the
  // finest chunks tried.
  if (mayOffload && opts.checkpoint === "auto" && totalRegions > 0 && !plans.some(fitsDevice)) {
    const chunks = finerChunks ? layoutChunks(sharded, finestCapacity(sharded), "finest") : leastWaste;
    plans = [
      ...plans,
      ...offloadSchedule(
        chunkBytes(chunks, zero),
        scheduled("none", undefined, chunks, { count: totalRegions, lookahead: 0 }),
        budgets,
        residentTooLarge(chunks),
        foundCounts(chunks),
      ),
    ];
  }
  // Under auto, when nothing fits every budget yet, the last candidates with blocks: every block
  // recomputed and its checkpoint moved to host memory. Moving whole blocks fills the host at large batches,
  // and keeping the checkpoints fills the device; this holds only one block's activations on the device
  // and one checkpoint a block on the host.
  if (mayOffload && opts.checkpoint === "auto" && totalRegions > 0 && !plans.some((p) => fits(p, budgets))) {
    const chunks = finerChunks ? layoutChunks(sharded, finestCapacity(sharded), "finest") : leastWaste;
    plans = [
      ...plans,
      ...offloadSchedule(
        chunkBytes(chunks, zero),
        scheduled("blocks", totalRegions, chunks, { count: totalRegions, lookahead: 0, checkpointsOnly: true }),
        budgets,
        residentTooLarge(chunks),
        foundCounts(chunks),
      ),
    ];
  }
  const chosen = choosePlan(
    plans,
    budgets,
    opts.checkpoint,
    mayOffload
      ? undefined
      : (name) =>
          decisions.gradAccum === 1
            ? `under ${name("dp")} ${decisions.dp} each rank offloads only its own shard of the model data, which needs ${name("zero")} 3`
            : `that is not combined with ${name("gradAccum")} ${decisions.gradAccum} yet (the unrolled step's chunk loads are not planned)`,
  );
  return { ...chosen, candidates: plans.map((p) => p.checkpoint) };
}

/** How many gathers ahead an overlapped ZeRO 3 gather may start (gather_params.ts). */
const GATHER_LOOKAHEADS = [1, 2];

/** The bytes of each chunk a rank holds: the whole chunk, or at ZeRO 3 its shard. */
const chunkBytes = (layout: ChunkLayout, zero?: ZeroSharding) =>
  layout.chunks.map((c) => (zero?.stage === 3 ? 4 * shardElements(c, zero.ranks) : c.bytes));

/** `make`, remembering its result for each key. */
function cached<A extends unknown[], R>(make: (...args: A) => R, key: (...args: A) => string): (...args: A) => R {
  const results = new Map<string, R>();
  return (...args) => {
    const k = key(...args);
    if (!results.has(k)) results.set(k, make(...args));
    return results.get(k)!;
  };
}

/** Moved activations: K regions exist, and with blocks:R recomputed the two together do too. */
function checkMoves(opts: CompileOptions, moves: number, totalRegions: number): void {
  if (opts.moveActivations === undefined) return;
  if (opts.checkpoint === "auto")
    throw new SettingError(
      (name) => `${name("moveActivations")}: ${name("checkpoint")} auto chooses which activations move; give one or the other`,
    );
  const recomputed = opts.checkpoint === "blocks" ? (opts.checkpointRegions ?? 0) : 0;
  if (moves + recomputed > totalRegions)
    throw new SettingError(
      (name) =>
        `${name("moveActivations")} ${moves}${recomputed > 0 ? ` with ${name("checkpoint")} blocks:${recomputed}` : ""}: ` +
        `the model marks only ${totalRegions} checkpoint regions`,
    );
}
