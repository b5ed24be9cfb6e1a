// The passes from a traced training graph to the graph a plan runs, declared once, in order. The plan
// search asks for the graph after some pass under many settings; each pass names the settings it reads,
// so a prefix of the pipeline runs once for each distinct value of those and is shared by every plan
// that agrees on them. Under STOW_VERIFY_PASSES=1 (the tests set it) each graph a pass makes is checked.
import type { Graph } from "../ir/types.ts";
import { verifyGraph } from "../ir/verify.ts";
import { shard } from "../ir/passes/shard.ts";
import { type LmHeadTile, fuseLmHead } from "../ir/passes/fuse_lm_head.ts";
import { autodiff } from "../ir/passes/autodiff.ts";
import { accumulateEmbeddingGrads } from "../ir/passes/embedding_grad.ts";
import { fuseElementwise } from "../ir/passes/fuse_elementwise.ts";
import { type CheckpointMode, recompute } from "../ir/passes/recompute.ts";
import { adamwPass } from "../ir/passes/adamw.ts";
import { earlyUpdate } from "../ir/passes/early_update.ts";
import { offloadActivations } from "../ir/passes/offload_activations.ts";
import { type OffloadSchedule, offloadModelData } from "../ir/passes/offload.ts";
import { shardGradNorm } from "../ir/passes/shard_grad_norm.ts";
import { averageOverDataParallel } from "../ir/passes/data_parallel.ts";
import { accumulateGradients } from "../ir/passes/grad_accum.ts";
import { gatherParams } from "../ir/passes/gather_params.ts";
import { overlapCollectives } from "../ir/passes/overlap_collectives.ts";
import type { ChunkLayout, ZeroSharding } from "../ir/passes/chunks.ts";

/** Which regions' saved activations move to the host (the first `count`), and how far ahead their copies run. */
export interface Moves {
  count: number;
  lookahead: number;
  /**
   * The moved regions are recomputed too, so only what each hands on (its checkpoint) moves: the least
   * a step holds on the device and in host memory together, as DeepSpeed's cpu_checkpointing does.
   */
  checkpointsOnly?: boolean;
}
export const NO_MOVES: Moves = { count: 0, lookahead: 0 };

/** Everything a pass may read besides its input graph. */
export interface PassSettings {
  /** Tensor-parallel ranks. */
  ranks: number;
  /** Data-parallel ranks (default 1), whose gradients and loss are averaged. */
  dp?: number;
  /** Micro-batches per step (default 1), their gradients summed before one update. */
  gradAccum?: number;
  /** ZeRO: AdamW moments (stage 1), gradients (2) and parameters (3) sharded over the data-parallel ranks in these chunks. */
  zero?: ZeroSharding;
  /** ZeRO 3: how many gathers ahead of the one its readers need a chunk's gather starts (default 1). */
  gatherLookahead?: number;
  /** ZeRO 2 and 3: chunk collectives run beside compute until first needed (default true); false: each blocks. */
  overlapCollectives?: boolean;
  /** Compile the global gradient norm (clipping and the grad_norm metric). */
  clip: boolean;
  mode: CheckpointMode;
  /** Under blocks: how many checkpoint regions are recomputed, the first after the moved ones. */
  regions: number;
  moves: Moves;
  /** The fused LM head's logits tile (plan/strategies/kernel_tiles.ts); none: the default, lmHeadTile's. */
  lmHeadTile?: LmHeadTile;
  /** Fuse elementwise chains into generated kernels (default true; false for comparison). */
  fusion?: boolean;
  /** Model data offloaded in these chunks on this schedule; none: it stays on the device. */
  offload?: { chunks: ChunkLayout; schedule: OffloadSchedule };
}

export interface Pass {
  readonly name: string;
  run(g: Graph, s: PassSettings): Graph;
  /** The settings this pass reads, as a key; undefined: its results are not kept (each is used once). */
  reads(s: PassSettings): string | undefined;
}

const gatherLookahead = (s: PassSettings) => s.gatherLookahead ?? 1;
const firstRegions = (count: number) => new Set(Array.from({ length: count }, (_, i) => i));

export const PIPELINE = [
  { name: "shard", reads: (s) => `${s.ranks}`, run: (g, s) => shard(g, s.ranks) },
  // After sharding: under --tp the loss is vocabulary-parallel, and the fusion leaves it alone.
  {
    name: "fuse",
    reads: (s) => (s.lmHeadTile ? `${s.lmHeadTile.rows}x${s.lmHeadTile.cols}` : ""),
    run: (g, s) => fuseLmHead(g, s.lmHeadTile),
  },
  { name: "autodiff", reads: () => "", run: (g) => accumulateEmbeddingGrads(autodiff(g)) },
  // After autodiff (a fused node needs no gradient rule), before recompute and the moves, which then
  // clone, keep or move fused nodes whole: the planner sees and sizes the fused graph.
  { name: "fusion", reads: (s) => `${s.fusion !== false}`, run: (g, s) => (s.fusion === false ? g : fuseElementwise(g)) },
  {
    name: "recompute",
    // The moves' count is read here for the move-activations pass too, whose key adds only the lookahead.
    reads: (s) => `${s.mode} ${s.regions} ${s.moves.count}${s.moves.checkpointsOnly ? " checkpoints only" : ""}`,
    run: (g, s) => recompute(g, s.mode, s.regions, s.moves.checkpointsOnly ? 0 : s.moves.count),
  },
  { name: "grad-accum", reads: (s) => `${s.gradAccum ?? 1}`, run: (g, s) => accumulateGradients(g, s.gradAccum ?? 1) },
  {
    name: "data-parallel",
    reads: (s) => `${s.dp ?? 1}${s.zero && s.zero.stage >= 2 ? ` zero ${s.zero.chunks.capacity}` : ""}`,
    run: (g, s) => averageOverDataParallel(g, s.dp ?? 1, s.zero),
  },
  {
    name: "gather-params",
    reads: (s) => (s.zero?.stage === 3 ? `${s.zero.ranks} ${s.zero.chunks.capacity} ${gatherLookahead(s)}` : ""),
    run: (g, s) => (s.zero?.stage === 3 ? gatherParams(g, s.zero, gatherLookahead(s)) : g),
  },
  {
    name: "overlap-collectives",
    reads: (s) => `${s.overlapCollectives !== false}`,
    run: (g, s) => overlapCollectives(g, s.overlapCollectives !== false),
  },
  {
    name: "adamw",
    reads: (s) => `${s.clip}${s.zero ? ` zero ${s.zero.stage} ${s.zero.ranks} ${s.zero.chunks.capacity}` : ""}`,
    run: (g, s) => adamwPass(g, { clip: s.clip, ...(s.zero && { zero: s.zero }) }),
  },
  { name: "early-update", reads: () => "", run: (g) => earlyUpdate(g) },
  {
    name: "move-activations",
    reads: (s) => `${s.moves.lookahead}`,
    run: (g, s) => offloadActivations(g, { regions: firstRegions(s.moves.count), lookahead: s.moves.lookahead }),
  },
  {
    // Each offload schedule is planned once, so its graph is not kept.
    name: "offload",
    reads: () => undefined,
    run: (g, s) => shardGradNorm(s.offload ? offloadModelData(g, s.offload.chunks, s.offload.schedule, s.zero) : g),
  },
] as const satisfies readonly Pass[];

export type PassName = (typeof PIPELINE)[number]["name"];
/** What `stow ir --after` can show: the traced graph and the graph after each pass. */
export type StageName = "trace" | PassName;
export const STAGE_NAMES: readonly StageName[] = ["trace", ...PIPELINE.map((p) => p.name)];

export interface Stage {
  name: StageName;
  graph: Graph;
}

/** Verifies every graph a pass makes when STOW_VERIFY_PASSES=1: a broken invariant names the pass. */
const verifying = process.env.STOW_VERIFY_PASSES === "1";

/** The pipeline over one traced graph, remembering each kept prefix's result. */
export class Pipeline {
  private readonly kept = new Map<string, Graph>();

  constructor(private readonly traced: Graph) {}

  /** The traced graph and the graph after each pass up to and including `last`, under `settings`. */
  stages(last: PassName, settings: PassSettings): Stage[] {
    const stages: Stage[] = [{ name: "trace", graph: this.traced }];
    // The key names the settings every pass so far read; after a pass whose result is not kept, none is.
    let key: string | undefined = "";
    let graph = this.traced;
    for (const pass of PIPELINE) {
      const reads = pass.reads(settings);
      key = key === undefined || reads === undefined ? undefined : `${key}|${pass.name}:${reads}`;
      const known = key === undefined ? undefined : this.kept.get(key);
      graph = known ?? runPass(pass, graph, settings, verifying);
      if (key !== undefined && known === undefined) this.kept.set(key, graph);
      stages.push({ name: pass.name, graph });
      if (pass.name === last) return stages;
    }
    throw new Error(`internal: no pass named ${last}`);
  }

  /** The graph after pass `name`. */
  after(name: PassName, settings: PassSettings): Graph {
    const stages = this.stages(name, settings);
    return stages[stages.length - 1].graph;
  }
}

/** Runs one pass; with `verify`, a graph that breaks the IR's invariants is a compiler bug naming the pass. */
export function runPass(pass: Pass, g: Graph, settings: PassSettings, verify: boolean): Graph {
  const out = pass.run(g, settings);
  if (verify) {
    try {
      verifyGraph(out);
    } catch (e) {
      throw new Error(`internal: the graph after pass ${pass.name} is malformed: ${(e as Error).message}`, { cause: e });
    }
  }
  return out;
}
