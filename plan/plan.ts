// What a plan is: the request the planner is given (CompileOptions), the candidates it weighs, and the
// Plan it chooses, with every decision resolved. Codegen, reports and the runtime bridge read a Plan;
// nothing below the planner sees the command line's options.
import { type Graph, numel, trainedParams } from "../ir/types.ts";
import type { OffloadSchedule } from "../ir/passes/offload.ts";
import type { ChunkLayout } from "../ir/passes/chunks.ts";
import type { CheckpointMode } from "../ir/passes/recompute.ts";
import type { Machine, MeasuredTimes, Mesh, StepTime } from "../ir/cost_model.ts";
import type { MemoryPlan, PersistentLayout } from "../ir/passes/memory_plan.ts";
import type { ModelConfig } from "../src/dsl/model.ts";
import { type BackendName, backendCaps, resolvePrecision } from "./backends.ts";
import { SettingError } from "../base/errors.ts";

/** cpu: g++ and OpenBLAS; cuda: nvcc (or the emulated CUDA target) and the CUDA runtime (plan/backends.ts). */
export type Backend = BackendName;

/** How matmuls multiply: fp32 arithmetic, or bf16 inputs with fp32 accumulation (CUDA only). */
export const PRECISIONS = ["bf16", "fp32"] as const;
export type Precision = (typeof PRECISIONS)[number];

/** The decisions a plan was made under, resolved: code generation and the build apply no defaults. */
export interface PlanDecisions {
  backend: Backend;
  /** How matmuls multiply: fp32 on the CPU, bf16 by default on CUDA. */
  precision: Precision;
  /** CUDA: built for the emulated target (runs on the CPU) instead of a GPU. */
  emulate: boolean;
  /** Tensor-parallel ranks, each holding a part of the model. */
  ranks: number;
  /** Data-parallel ranks, each running its rows of the global batch (docs/planning.md, data parallelism). */
  dp: number;
  /** ZeRO stage: 0 replicates model data on every data-parallel rank. */
  zero: number;
  /** Micro-batches per step, their gradients accumulated before one update. */
  gradAccum: number;
  /** Sequences per step over every data-parallel rank and micro-batch (`--batch`); `train.batch` is one rank's share. */
  globalBatch: number;
  /** Kernel and BLAS threads the memory plan sized workspaces for. */
  threads: number;
  /** The global gradient norm is computed (clipping and the grad_norm metric). */
  clip: boolean;
  /** Elementwise chains are fused into generated kernels (ir/passes/fuse_elementwise.ts). */
  fusion: boolean;
  /** ZeRO's chunk collectives may overlap compute (ir/passes/overlap_collectives.ts). */
  overlap: boolean;
  /** Device budget the arena was fitted to, if any. */
  deviceBudget?: number;
  /** Host budget offloaded model data was fitted to, if any. */
  hostBudget?: number;
  /** Disk tier budget model data was fitted to, if any (none: no disk tier). */
  diskBudget?: number;
  /** The checkpoint mode asked for: under auto, `Plan.checkpoint.mode` is the one the planner chose. */
  requestedCheckpoint: CheckpointMode | "auto";
  /** Node times from a profiled warm-up that replaced the cost model's estimates. */
  measured?: MeasuredTimes;
}

/** The decisions a request resolves to. */
export function resolveDecisions(opts: CompileOptions): PlanDecisions {
  const backend = opts.backend ?? "cpu";
  return {
    backend,
    precision: resolvePrecision(backendCaps(backend), opts.precision),
    emulate: opts.emulate === true,
    ranks: opts.tp ?? 1,
    ...dataParallel(opts),
    threads: opts.threads,
    clip: opts.clip,
    fusion: opts.fusion !== false,
    overlap: opts.overlap !== false,
    ...(opts.deviceMemory !== undefined && { deviceBudget: opts.deviceMemory }),
    ...(opts.hostMemory !== undefined && { hostBudget: opts.hostMemory }),
    ...(opts.diskMemory !== undefined && { diskBudget: opts.diskMemory }),
    requestedCheckpoint: opts.checkpoint,
    ...(opts.measured && { measured: opts.measured }),
  };
}

/** The data-parallel decisions, checked: the global batch must split evenly into every rank's micro-batches. */
function dataParallel(opts: CompileOptions): Pick<PlanDecisions, "dp" | "zero" | "gradAccum" | "globalBatch"> {
  const dp = opts.dp ?? 1;
  const zero = opts.zero ?? 0;
  const gradAccum = opts.gradAccum ?? 1;
  if (!Number.isInteger(zero) || zero < 0 || zero > 3)
    throw new SettingError((name) => `${name("zero")} must be 0, 1, 2 or 3 (ZeRO stages), got ${zero}`);
  if (zero > 0 && dp === 1)
    throw new SettingError(
      (name) => `${name("zero")} ${zero} shards over data-parallel ranks, but there is one: give ${name("dp")} 2 or more`,
    );
  const parts = dp * gradAccum;
  if (opts.batch % parts !== 0)
    throw new SettingError(
      (name) =>
        `${name("batch")} ${opts.batch} is the global batch; it must split evenly over ${name("dp")} ${dp}` +
        `${gradAccum > 1 ? ` x ${name("gradAccum")} ${gradAccum}` : ""} micro-batches, and ${parts} does not divide it`,
    );
  return { dp, zero, gradAccum, globalBatch: opts.batch };
}

/**
 * Whether the planner may offload model data under these decisions. Not yet with accumulation (the
 * unrolled step keeps each gradient's running sum on the device), nor with data parallelism below
 * ZeRO 3, where each rank would offload a replica (docs/planning.md). `stow capacity` bounds its search by it.
 */
export function offloadsModelData(d: Pick<PlanDecisions, "dp" | "zero" | "gradAccum">): boolean {
  return (d.dp === 1 || d.zero === 3) && d.gradAccum === 1;
}

/** Sequences one rank's training program runs at once: the global batch over dp x grad_accum (checked). */
export function microBatch(opts: CompileOptions): number {
  const { dp, gradAccum } = dataParallel(opts);
  return opts.batch / (dp * gradAccum);
}

export interface CompileOptions {
  /** Sequences per step: the global batch, over every data-parallel rank and micro-batch. */
  batch: number;
  seq: number;
  threads: number;
  /** Compile the global gradient norm (clipping and the grad_norm metric). */
  clip: boolean;
  /** What to recompute in the backward; auto picks the cheapest mode that fits deviceMemory. */
  checkpoint: CheckpointMode | "auto";
  /** Under blocks: recompute only this many checkpoint regions, the first after any moved ones (default: all). */
  checkpointRegions?: number;
  /**
   * The first this many checkpoint regions keep their saved activations in host memory between the
   * forward and the backward (default 0). Under auto, the planner chooses.
   */
  moveActivations?: number;
  /** Device budget in bytes: the arena must fit in it. */
  deviceMemory?: number;
  /** Host budget in bytes: offloaded model data must fit in it. */
  hostMemory?: number;
  /** Disk tier budget in bytes: when host memory cannot hold offloaded model data, AdamW moments go to disk. */
  diskMemory?: number;
  /** Most parameter bytes in one chunk of offloaded model data (default: searched for the least waste). */
  chunkSize?: number;
  /** The host-device link the offload schedule is planned for, in gigabits per second (default: a memcpy). */
  linkGbps?: number;
  /** Node times measured in a profiled warm-up; they replace the machine model's estimates. */
  measured?: MeasuredTimes;
  /** Tensor-parallel degree: ranks that each hold a part of the model (default 1). */
  tp?: number;
  /** Data-parallel degree: ranks that each run their rows of the global batch (default 1). */
  dp?: number;
  /** ZeRO stage over the data-parallel ranks (default 0: model data replicated). */
  zero?: number;
  /** Micro-batches per step (default 1). */
  gradAccum?: number;
  /** Fuse elementwise chains into generated kernels (default true; false plans one kernel per op). */
  fusion?: boolean;
  /** Overlap ZeRO's chunk collectives with compute where the step fits (default true; false: each blocks). */
  overlap?: boolean;
  /** The hardware the cost model predicts for (default: CPU_DEFAULTS); --link-gbps still sets its link. */
  machine?: Machine;
  /** What the plan runs on (default cpu): its cost model here, its code and build later. */
  backend?: Backend;
  /** CUDA backend: how matmuls multiply (default bf16). */
  precision?: Precision;
  /** CUDA backend: build for the emulated CUDA target (the plan runs on the CPU) instead of a GPU. */
  emulate?: boolean;
}

/** One way to run the training step: a checkpoint mode, its predicted peak and its recompute cost. */
export interface Candidate {
  mode: CheckpointMode;
  /** Some model data (parameters, gradients, AdamW states) lives in host memory and moves in as needed. */
  offload: boolean;
  /** When offloaded: which chunks stay on the device, how far copies run ahead, which copies are kept. */
  schedule?: OffloadSchedule;
  /** Bytes copied host to device and back per training step. */
  transferBytes: number;
  /** Chunk copies to the device per training step. */
  chunkLoads: number;
  /** The step's time as the cost model plays it out. */
  predicted: StepTime;
  /** Under blocks: how many checkpoint regions (the first after the moved ones) are recomputed, of `totalRegions`. */
  regions: number;
  totalRegions: number;
  /** How many checkpoint regions (the first ones) keep their saved activations in host memory. */
  moved: number;
  /** How many regions ahead activation copies are waited for and started (ir/passes/offload_activations.ts). */
  moveLookahead: number;
  /** ZeRO's chunk collectives run beside compute until first needed (false: each blocks, or there are none). */
  overlapsCollectives: boolean;
  /** ZeRO 3: how many gathers ahead of the one its readers need a chunk's gather starts. */
  gatherLookahead: number;
  /** The moved regions are recomputed too, and only their checkpoints move (pipeline.ts, Moves). */
  movesCheckpointsOnly: boolean;
  /** Bytes of saved activations copied to the host per step (and as many back). */
  movedBytes: number;
  peak: number;
  arenaBytes: number;
  recomputeFlops: number;
}

export interface CompiledProgram {
  graph: Graph;
  memory: MemoryPlan;
  /** Sequences the program reads per run: in training, one rank's rows of the global batch (all its micro-batches). */
  batch: number;
  seq: number;
}

export interface Plan {
  modelPath: string;
  config: ModelConfig;
  decisions: PlanDecisions;
  persistent: PersistentLayout;
  train: CompiledProgram;
  infer: CompiledProgram;
  /** Device arena: the persistent region (unless offloaded) plus the larger dynamic region of the programs. */
  arenaBytes: number;
  /** Host region for offloaded model data (0 when it lives in the arena). */
  hostBytes: number;
  /** Disk tier for moments of offloaded chunks (0: none). */
  diskBytes: number;
  /** How parameters group into chunks, the unit in which offloaded model data moves. */
  chunks: ChunkLayout;
  /** The training graph after each pass, for `stow ir --after`. */
  stages: { name: string; graph: Graph }[];
  /** The machine the cost model assumed (the link from --link-gbps). */
  machine: Machine;
  /** The checkpoint mode in use, and every mode that was considered (one unless --checkpoint auto). */
  checkpoint: Candidate;
  candidates: Candidate[];
}

/** A plan the search made and weighs: everything but the list of the others. */
export type PlanCandidate = Omit<Plan, "candidates">;

/** Processes a plan runs on: the data-parallel x tensor-parallel mesh. */
export function worldSize(d: PlanDecisions): number {
  return d.dp * d.ranks;
}

/** The group sizes the cost model gives collectives. */
export function meshOf(d: PlanDecisions): Mesh {
  return { tp: d.ranks, dp: d.dp };
}

/** Trained parameters of the whole model (a sharded one counted at its full size, once; buffers not at all, as PyTorch's parameters()). */
export function paramCount(plan: Plan): number {
  return trainedParams(plan.train.graph).reduce(
    (s, p) => s + (p.shard ? (numel(p.shape) / p.shape[p.shard.axis]) * p.shard.full : numel(p.shape)),
    0,
  );
}
