// The data-parallel part of `stow plan`: the mesh (dp x tp ranks), how the global batch splits into
// each rank's micro-batches, what each rank holds, which shard of each chunk it owns under ZeRO, and the
// data-parallel collectives of one step with the bytes they move. Every rank runs the same program, so
// the memory plan is each rank's.
import { collectives } from "../../ir/collectives.ts";
import { shardElements } from "../../ir/passes/chunks.ts";
import { formatBytes } from "../../base/units.ts";
import { numel } from "../../ir/types.ts";
import { type Plan, worldSize } from "../../plan/plan.ts";

export interface DataParallelReport {
  dp: number;
  tp: number;
  /** Processes: dp x tp, tensor-parallel ranks adjacent (world rank = dp index * tp + tp index). */
  ranks: number;
  zero: number;
  grad_accum: number;
  global_batch: number;
  micro_batch: number;
  /** Each rank's predicted device peak and its model data (parameters, gradients, AdamW moments) at that peak. */
  rank_device_peak_bytes: number[];
  rank_param_bytes: number[];
  rank_gradient_bytes: number[];
  rank_optimizer_state_bytes: number[];
  /** Model data each rank keeps for the whole step (parameters and moments; at ZeRO 3, shards of both). */
  rank_model_data_bytes: number[];
  /** The parameter bytes each rank holds between steps, as the runtime counts them (its metric rank_param_bytes). */
  rank_held_param_bytes: number[];
  /** Under ZeRO: each chunk's bytes and its shard; data-parallel rank r owns bytes [r * shard, (r + 1) * shard). */
  chunk_shards: { chunk: number; bytes: number; shard_bytes: number }[];
  /** The data-parallel collectives (gradient and loss reductions; under ZeRO, each chunk's gathers), per rank per step. */
  dp_collective_calls_per_step: number;
  dp_collective_bytes_per_step: number;
  /** Every collective of a rank's step (tensor- and data-parallel): what the runtime counts. */
  collective_calls_per_step: number;
  collective_bytes_per_step: number;
}

const DP_COLLECTIVES = new Set(["zero_gather", "zero_reduce_scatter", "zero_all_gather"]);

const SHARDED = [
  "model data replicated",
  "AdamW moments sharded",
  "AdamW moments and gradients sharded",
  "AdamW moments, gradients and parameters sharded",
];

export function dataParallelReport(plan: Plan): DataParallelReport {
  const d = plan.decisions;
  const ranks = worldSize(d);
  const all = collectives(plan.train.graph);
  const ofDp = all.filter((c) => (c.node.op === "all_reduce" && c.node.attrs.group === "dp") || DP_COLLECTIVES.has(c.node.op));
  const b = plan.train.memory.breakdown;
  const each = (bytes: number) => Array<number>(ranks).fill(bytes);
  const chunks = d.zero === 0 ? [] : plan.chunks.chunks;
  const heldParams =
    d.zero === 3
      ? chunks.reduce((s, c) => s + 4 * shardElements(c, d.dp), 0)
      : plan.train.graph.params.reduce((s, p) => s + 4 * numel(p.shape), 0);
  return {
    dp: d.dp,
    tp: d.ranks,
    ranks,
    zero: d.zero,
    grad_accum: d.gradAccum,
    global_batch: d.globalBatch,
    micro_batch: plan.train.batch / d.gradAccum,
    rank_device_peak_bytes: each(plan.train.memory.peak),
    rank_param_bytes: each(b.parameters),
    rank_gradient_bytes: each(b.gradients),
    rank_optimizer_state_bytes: each(b.optimizer_states),
    rank_model_data_bytes: each(plan.persistent.paramBytes + plan.persistent.optStateBytes),
    rank_held_param_bytes: each(heldParams),
    chunk_shards: chunks.map((c) => ({ chunk: c.index, bytes: c.bytes, shard_bytes: 4 * shardElements(c, d.dp) })),
    dp_collective_calls_per_step: ofDp.length,
    dp_collective_bytes_per_step: ofDp.reduce((s, c) => s + c.bytes, 0),
    collective_calls_per_step: all.length,
    collective_bytes_per_step: all.reduce((s, c) => s + c.bytes, 0),
  };
}

export function dataParallelText(plan: Plan): string {
  const r = dataParallelReport(plan);
  const accum = r.grad_accum > 1 ? ` x ${r.grad_accum} micro-batches` : "";
  const rows = r.rank_device_peak_bytes.map(
    (peak, k) =>
      `    rank ${String(k).padEnd(3)} (dp ${Math.floor(k / r.tp)}, tp ${k % r.tp})  device peak ${formatBytes(peak).padStart(10)}  ` +
      `model data kept ${formatBytes(r.rank_model_data_bytes[k])}; at the peak: parameters ${formatBytes(r.rank_param_bytes[k])}, ` +
      `gradients ${formatBytes(r.rank_gradient_bytes[k])}, optimizer states ${formatBytes(r.rank_optimizer_state_bytes[k])}`,
  );
  const shards = r.chunk_shards.map((c) => formatBytes(c.shard_bytes)).join(", ");
  const what = [
    "gradient and loss all-reduces",
    "a gather of each chunk's updated shards",
    "a reduce-scatter of each chunk's gradients, a gather of each chunk's updated shards",
    "a reduce-scatter of each chunk's gradients, a gather of each chunk before the forward's and the backward's use",
  ][r.zero];
  return [
    `data parallel: dp ${r.dp} x tp ${r.tp} = ${r.ranks} ranks, ZeRO ${r.zero} (${SHARDED[r.zero]}` +
      `${r.zero > 0 ? `: each rank holds 1/${r.dp} of each chunk's` : ""})`,
    `  global batch ${r.global_batch} = dp ${r.dp} x micro-batch ${r.micro_batch}${accum}; each dp rank reads its rows of every batch`,
    ...rows,
    ...(r.zero > 0
      ? [`  ${r.chunk_shards.length} chunks; dp rank r owns bytes [r x shard, (r + 1) x shard) of each, shards ${shards}`]
      : []),
    `  data-parallel collectives per step: ${r.dp_collective_calls_per_step} (${what}) moving ` +
      `${formatBytes(r.dp_collective_bytes_per_step)} (${r.dp_collective_bytes_per_step} bytes) on each rank`,
    `  all collectives per step on each rank: ${r.collective_calls_per_step} calls, ${r.collective_bytes_per_step} bytes`,
  ].join("\n");
}
