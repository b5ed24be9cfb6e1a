// The data-parallel part of `stow plan`: the mesh (dp x tp ranks), how the global batch splits into
// each rank's micro-batches, what each rank holds, and the data-parallel collectives of one step with
// the bytes they move. Every rank runs the same program, so the memory plan is each rank's.
import { collectives } from "../../ir/collectives.ts";
import { formatBytes } from "../../base/units.ts";
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
  /** Each rank's predicted device peak and its model data (parameters, gradients, AdamW moments). */
  rank_device_peak_bytes: number[];
  rank_param_bytes: number[];
  rank_gradient_bytes: number[];
  rank_optimizer_state_bytes: number[];
  /** The data-parallel collectives (gradient and loss all-reduces; under ZeRO, each chunk's gather), per rank per step. */
  dp_collective_calls_per_step: number;
  dp_collective_bytes_per_step: number;
  /** Every collective of a rank's step (tensor- and data-parallel): what the runtime counts. */
  collective_calls_per_step: number;
  collective_bytes_per_step: number;
}

export function dataParallelReport(plan: Plan): DataParallelReport {
  const d = plan.decisions;
  const ranks = worldSize(d);
  const all = collectives(plan.train.graph);
  const ofDp = all.filter(
    (c) =>
      (c.node.op === "all_reduce" && c.node.attrs.group === "dp") || c.node.op === "zero_gather" || c.node.op === "zero_reduce_scatter",
  );
  const b = plan.train.memory.breakdown;
  const each = (bytes: number) => Array<number>(ranks).fill(bytes);
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
      `parameters ${formatBytes(r.rank_param_bytes[k])}, gradients ${formatBytes(r.rank_gradient_bytes[k])}, ` +
      `optimizer states ${formatBytes(r.rank_optimizer_state_bytes[k])}`,
  );
  return [
    `data parallel: dp ${r.dp} x tp ${r.tp} = ${r.ranks} ranks, ZeRO ${r.zero}` +
      (r.zero === 0 ? " (model data replicated)" : ` (AdamW moments sharded: each rank holds 1/${r.dp} of each chunk's)`),
    `  global batch ${r.global_batch} = dp ${r.dp} x micro-batch ${r.micro_batch}${accum}; each dp rank reads its rows of every batch`,
    ...rows,
    `  data-parallel collectives per step: ${r.dp_collective_calls_per_step} (gradient and loss all-reduces` +
      `${r.zero > 0 ? ", a gather of each chunk's updated shards" : ""}) moving ` +
      `${formatBytes(r.dp_collective_bytes_per_step)} (${r.dp_collective_bytes_per_step} bytes) on each rank`,
    `  all collectives per step on each rank: ${r.collective_calls_per_step} calls, ${r.collective_bytes_per_step} bytes`,
  ].join("\n");
}
