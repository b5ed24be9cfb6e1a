// The pipeline from a model definition to a Plan: trace the training and inference programs, run the
// passes in order, and plan memory. Each pass's output is kept so `stow ir --after PASS` can show it.
import { type Graph, formatLoc, valueBytes } from "../../ir/types.ts";
import { offloadModelData } from "../../ir/passes/offload.ts";
import { earlyUpdate } from "../../ir/passes/early_update.ts";
import { autodiff } from "../../ir/passes/autodiff.ts";
import { fuseLmHead } from "../../ir/passes/fuse_lm_head.ts";
import { adamwPass } from "../../ir/passes/adamw.ts";
import { type CheckpointMode, recompute, regionCount } from "../../ir/passes/recompute.ts";
import { recomputeFlops } from "../../ir/flops.ts";
import { UserError } from "../cli/errors.ts";
import { formatBytes } from "../cli/progress.ts";
import { type MemoryPlan, type PersistentLayout, persistentLayout, planMemory } from "../../ir/passes/memory_plan.ts";
import { alignUp } from "../../ir/passes/arena_plan.ts";
import type { ModelConfig, ModelDefinition } from "../dsl/model.ts";
import { buildModel, traceProgram } from "./trace_program.ts";

export interface CompileOptions {
  batch: number;
  seq: number;
  threads: number;
  /** Compile the global gradient norm (clipping and the grad_norm metric). */
  clip: boolean;
  /** What to recompute in the backward; auto picks the cheapest mode that fits deviceMemory. */
  checkpoint: CheckpointMode | "auto";
  /** Under blocks: recompute only the first this many checkpoint regions (default: all). */
  checkpointRegions?: number;
  /** Device budget in bytes: the arena must fit in it. */
  deviceMemory?: number;
  /** Host budget in bytes: offloaded model data must fit in it. */
  hostMemory?: number;
}

/** One way to run the training step: a checkpoint mode, its predicted peak and its recompute cost. */
export interface Candidate {
  mode: CheckpointMode;
  /** Model data (parameters, gradients, AdamW states) lives in host memory and moves in as needed. */
  offload: boolean;
  /** Bytes copied host to device and back per training step. */
  transferBytes: number;
  /** Under blocks: how many checkpoint regions (the first ones) are recomputed, of `totalRegions`. */
  regions: number;
  totalRegions: number;
  peak: number;
  arenaBytes: number;
  recomputeFlops: number;
}

export interface CompiledProgram {
  graph: Graph;
  memory: MemoryPlan;
  batch: number;
  seq: number;
}

export interface Plan {
  modelPath: string;
  config: ModelConfig;
  options: CompileOptions;
  persistent: PersistentLayout;
  train: CompiledProgram;
  infer: CompiledProgram;
  /** Device arena: the persistent region (unless offloaded) plus the larger dynamic region of the programs. */
  arenaBytes: number;
  /** Host region for offloaded model data (0 when it lives in the arena). */
  hostBytes: number;
  /** The training graph after each pass, for `stow ir --after`. */
  stages: { name: string; graph: Graph }[];
  /** The checkpoint mode in use, and every mode that was considered (one unless --checkpoint auto). */
  checkpoint: Candidate;
  candidates: Candidate[];
}

export const PASSES = ["trace", "fuse", "autodiff", "recompute", "adamw", "early-update", "offload"] as const;

/** Bytes a step moves between host and device (0 when model data is resident). */
function transferBytes(g: Graph): number {
  return g.nodes.filter((n) => n.op === "copy_h2d" || n.op === "copy_d2h").reduce((s, n) => s + valueBytes(n.outputs[0]), 0);
}

export function compilePlan(def: ModelDefinition, modelPath: string, config: ModelConfig, opts: CompileOptions): Plan {
  const model = buildModel(def, config);
  const traced = traceProgram(model, config, { batch: opts.batch, seq: opts.seq, kind: "train" });
  const fused = fuseLmHead(traced);
  const differentiated = autodiff(fused);
  const inferGraph = traceProgram(model, config, { batch: 1, seq: config.seq, kind: "infer" });
  const totalRegions = regionCount(differentiated);

  const planFor = (mode: CheckpointMode, regions = mode === "blocks" ? totalRegions : 0, offload = false) => {
    const recomputed = recompute(differentiated, mode, regions);
    const withOptimizer = adamwPass(recomputed, { clip: opts.clip });
    const optimized = earlyUpdate(withOptimizer);
    const g = offload ? offloadModelData(optimized) : optimized;
    const inferred = offload ? offloadModelData(inferGraph) : inferGraph;
    const persistent = persistentLayout(g, true, offload);
    const train = { graph: g, memory: planMemory(g, persistent, opts.threads), batch: opts.batch, seq: opts.seq };
    const infer = { graph: inferred, memory: planMemory(inferred, persistent, opts.threads), batch: 1, seq: config.seq };
    const resident = offload ? 0 : persistent.bytes;
    const arenaBytes = alignUp(resident + Math.max(train.memory.dynamicBytes, infer.memory.dynamicBytes));
    const checkpoint: Candidate = {
      mode, regions, totalRegions, offload, transferBytes: transferBytes(g), peak: train.memory.peak, arenaBytes,
      recomputeFlops: recomputeFlops(g),
    };
    const stages = [
      { name: "trace", graph: traced }, { name: "fuse", graph: fused }, { name: "autodiff", graph: differentiated },
      { name: "recompute", graph: recomputed }, { name: "adamw", graph: withOptimizer },
      { name: "early-update", graph: optimized }, { name: "offload", graph: g },
    ];
    const hostBytes = offload ? persistent.bytes : 0;
    return { modelPath, config, options: opts, persistent, train, infer, arenaBytes, hostBytes, stages, checkpoint };
  };

  if (opts.checkpointRegions !== undefined && opts.checkpointRegions > totalRegions)
    throw new UserError(`--checkpoint blocks:${opts.checkpointRegions}: the model marks only ${totalRegions} checkpoint regions`);
  // Model data stays on the device when the budget allows; otherwise it moves to the host.
  const candidatesWith = (offload: boolean) => opts.checkpoint === "auto"
    ? autoCandidates((m, r) => planFor(m, r, offload), totalRegions, opts.deviceMemory)
    : [planFor(opts.checkpoint, opts.checkpoint === "blocks" ? opts.checkpointRegions : undefined, offload)];
  const fits = (p: { arenaBytes: number }) => opts.deviceMemory === undefined || p.arenaBytes <= opts.deviceMemory;
  let plans = candidatesWith(false);
  if (!plans.some(fits)) plans = [...plans, ...candidatesWith(true)];
  const chosen = choosePlan(plans, opts);
  return { ...chosen, candidates: plans.map((p) => p.checkpoint) };
}

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

/** The plan to run: the requested mode, or under auto the least recompute among those that fit. */
function choosePlan<P extends { checkpoint: Candidate; train: CompiledProgram; persistent: PersistentLayout; hostBytes: number }>(
  plans: P[], opts: CompileOptions,
): P {
  const budget = opts.deviceMemory;
  if (budget === undefined) {
    if (opts.checkpoint === "auto") throw new UserError("--checkpoint auto needs a budget to fit: give --device-memory");
    return plans[0];
  }
  const hostBudget = opts.hostMemory ?? Infinity;
  const fitting = plans.filter((p) => p.checkpoint.arenaBytes <= budget && p.hostBytes <= hostBudget);
  // Resident model data first (nothing moves), then the least recompute.
  const cost = (c: Candidate) => [c.offload ? 1 : 0, c.recomputeFlops, c.transferBytes];
  const cheaper = (a: Candidate, b: Candidate) => {
    const [x, y] = [cost(a), cost(b)];
    const i = x.findIndex((v, k) => v !== y[k]);
    return i >= 0 && x[i] < y[i];
  };
  if (fitting.length > 0) return fitting.reduce((best, p) => (cheaper(p.checkpoint, best.checkpoint) ? p : best));
  const offloaded = plans.filter((p) => p.checkpoint.offload && p.checkpoint.arenaBytes <= budget);
  if (offloaded.length > 0) {
    const smallest = Math.min(...offloaded.map((p) => p.hostBytes));
    throw new UserError(`the model data does not fit in --host-memory ${formatBytes(hostBudget)}: offloaded to the host, ` +
      `parameters, gradients and AdamW states need ${formatBytes(smallest)} (${smallest} bytes)`);
  }
  const least = plans.reduce((best, p) => (p.checkpoint.arenaBytes < best.checkpoint.arenaBytes ? p : best));
  const consumers = [...least.train.memory.buffers].sort((a, b) => b.bytes - a.bytes).slice(0, 5)
    .map((b) => `  ${formatBytes(b.bytes).padStart(10)}  ${b.kind} from ${b.node.op} at ${formatLoc(b.node.loc)}`);
  throw new UserError(
    `the step does not fit in --device-memory ${formatBytes(budget)}: it needs at least ` +
    `${formatBytes(least.checkpoint.arenaBytes)} (${least.checkpoint.arenaBytes} bytes, with --checkpoint ${least.checkpoint.mode}` +
    `${least.checkpoint.offload ? " and model data offloaded to the host" : ""}). Largest temporaries:\n${consumers.join("\n")}`);
}
