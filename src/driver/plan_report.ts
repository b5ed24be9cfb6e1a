// The memory plan as text (for people) and JSON (for tools), before anything runs: parameter count,
// the predicted arena peak and what it is made of, and the largest temporaries with their model lines.
import { formatLoc, formatShape, taskInputsOf } from "../../ir/types.ts";
import { graphFlops, nodeFlops } from "../../ir/flops.ts";
import { formatBytes } from "../../base/units.ts";
import { type Candidate, type CompiledProgram, type Plan, type PlanDecisions, paramCount } from "../../plan/plan.ts";
import { chunkRows, chunkTableText } from "./chunk_report.ts";
import { checkpointLabel, movedRows, movedText } from "./moved_report.ts";
import { tensorParallelReport, tensorParallelText } from "./plan_tp.ts";
import { lmHeadTileRow, lmHeadTileText } from "./tile_report.ts";
import { dataParallelReport, dataParallelText } from "./plan_dp.ts";
import { hiddenText } from "../report/chosen_plan.ts";
import { fusionSavings } from "../../ir/passes/fusion_savings.ts";

export function planJson(plan: Plan): object {
  const program = (p: CompiledProgram) => ({
    batch: p.batch,
    seq: p.seq,
    nodes: p.graph.nodes.length,
    device_peak_bytes: p.memory.peak,
    breakdown: p.memory.breakdown,
    buffers: p.memory.buffers.map((b) => ({
      kind: b.kind,
      bytes: b.bytes,
      offset: b.offset,
      start: b.start,
      end: b.end,
      op: b.node.op,
      value: b.kind === "workspace" ? null : b.key,
      loc: b.node.loc ? formatLoc(b.node.loc) : null,
    })),
  });
  return {
    model: plan.modelPath,
    config: plan.config,
    decisions: decisionsJson(plan.decisions),
    param_count: paramCount(plan),
    arena_bytes: plan.arenaBytes,
    host_bytes: plan.hostBytes,
    disk: diskJson(plan),
    offload: {
      model_data_on_host: plan.checkpoint.offload,
      transfer_bytes_per_step: plan.checkpoint.transferBytes,
      lookahead: plan.checkpoint.schedule?.lookahead ?? 0,
      chunk_capacity: plan.chunks.capacity,
      chunk_waste_bytes: plan.chunks.wasteBytes,
      chunks: chunkRows(plan),
    },
    device_peak_bytes: plan.train.memory.peak,
    breakdown: plan.train.memory.breakdown,
    kernel_tiles: { lm_head: lmHeadTileRow(plan) },
    fusion: fusionJson(plan),
    predicted_step: {
      seconds: plan.checkpoint.predicted.seconds,
      compute_seconds: plan.checkpoint.predicted.computeSeconds,
      network_seconds: plan.checkpoint.predicted.networkSeconds,
      network_hidden_seconds: plan.checkpoint.predicted.hiddenNetworkSeconds,
      overlaps_collectives: plan.checkpoint.overlapsCollectives,
      gather_lookahead: plan.checkpoint.gatherLookahead,
      link_seconds: plan.checkpoint.predicted.linkSeconds,
      stall_seconds: plan.checkpoint.predicted.stallSeconds,
    },
    checkpoint: {
      mode: plan.checkpoint.mode,
      regions: plan.checkpoint.regions,
      total_regions: plan.checkpoint.totalRegions,
      recompute_flops: plan.checkpoint.recomputeFlops,
      step_flops: graphFlops(plan.train.graph),
      recomputed: recomputedList(plan),
      moved_regions: plan.checkpoint.moved,
      moved_bytes_per_step: plan.checkpoint.movedBytes,
      move_lookahead: plan.checkpoint.moveLookahead,
      moves_checkpoints_only: plan.checkpoint.movesCheckpointsOnly,
      moved: movedRows(plan),
      candidates: plan.candidates.map((c) => ({
        mode: c.mode,
        regions: c.regions,
        moved_regions: c.moved,
        moved_bytes: c.movedBytes,
        move_lookahead: c.moveLookahead,
        offload: c.offload,
        device_peak_bytes: c.peak,
        arena_bytes: c.arenaBytes,
        transfer_bytes: c.transferBytes,
        recompute_flops: c.recomputeFlops,
        predicted_step_seconds: c.predicted.seconds,
      })),
    },
    params: plan.train.graph.params.map((p) => ({
      name: p.name,
      shape: p.shape,
      offset: plan.persistent.offsets.get(p.name),
      decay: p.decay,
    })),
    train: program(plan.train),
    infer: program(plan.infer),
    tensor_parallel: tensorParallelReport(plan),
    data_parallel: dataParallelReport(plan),
  };
}

/** Recomputed nodes grouped by op and model line: what runs twice, and its cost. */
function recomputedList(plan: Plan): { op: string; loc: string; count: number; flops: number }[] {
  const groups = new Map<string, { op: string; loc: string; count: number; flops: number }>();
  for (const n of plan.train.graph.nodes) {
    if (n.attrs.recompute !== true) continue;
    const key = `${n.op} ${formatLoc(n.loc)}`;
    const g = groups.get(key) ?? { op: n.op, loc: formatLoc(n.loc), count: 0, flops: 0 };
    g.count++;
    g.flops += nodeFlops(n);
    groups.set(key, g);
  }
  return [...groups.values()].sort((a, b) => b.flops - a.flops);
}

/** Parameters of the whole model (under --tp, each rank holds a part of them). */
export function planText(plan: Plan, top = 8): string {
  const m = plan.train.memory;
  const b = m.breakdown;
  const row = (label: string, bytes: number) => `  ${label.padEnd(20)} ${formatBytes(bytes).padStart(12)}`;
  const lines = [
    `model      ${plan.modelPath}  (${Object.entries(plan.config)
      .map(([k, v]) => `${k}=${v}`)
      .join(" ")})`,
    `step       ${stepInputsText(plan)}, ${plan.train.graph.nodes.length} nodes, ${plan.decisions.threads} threads`,
    `params     ${paramCount(plan).toLocaleString("en-US")}`,
    "",
    `device peak (arena high-water mark, predicted): ${formatBytes(m.peak)}  (${m.peak} bytes)`,
    ...(plan.checkpoint.offload
      ? [
          `  model data offloaded: ${formatBytes(plan.hostBytes)} in host memory, ` +
            `${formatBytes(plan.checkpoint.transferBytes)} moved per step (host to device and back)`,
          ...(plan.diskBytes > 0 ? diskLines(plan) : []),
        ]
      : plan.checkpoint.moved > 0
        ? [
            `  saved activations in host memory: ${formatBytes(plan.hostBytes)}, ${formatBytes(plan.checkpoint.transferBytes)} moved per step`,
          ]
        : []),
    row("parameters", b.parameters),
    row("optimizer states", b.optimizer_states),
    row("gradients", b.gradients),
    row("activations", b.activations),
    row("workspace", b.workspace),
    row("inputs", b.inputs),
    row("fragmentation", b.fragmentation),
    `  (temporaries as live at node ${m.peakPosition}: ${plan.train.graph.nodes[m.peakPosition].op} ` +
      `at ${formatLoc(plan.train.graph.nodes[m.peakPosition].loc)})`,
    predictedText(plan),
    ...lmHeadTileText(plan),
    fusionText(plan),
    ...(plan.checkpoint.offload ? ["", chunkTableText(plan)] : []),
    "",
    checkpointText(plan),
    "",
    ...(plan.decisions.ranks > 1 ? [tensorParallelText(plan), ""] : []),
    ...(plan.decisions.dp > 1 ? [dataParallelText(plan), ""] : []),
    `largest temporaries:`,
  ];
  const largest = [...m.buffers].sort((x, y) => y.bytes - x.bytes).slice(0, top);
  for (const buf of largest)
    lines.push(
      `  ${formatBytes(buf.bytes).padStart(12)}  ${buf.kind.padEnd(10)} ${buf.node.op.padEnd(24)} ` +
        `live ${buf.start}..${buf.end}  ${formatLoc(buf.node.loc)}`,
    );
  const infer =
    taskInputsOf(plan.infer.graph).length > 0 ? "the loss at batch 1, run by no command yet" : `batch 1 x seq ${plan.infer.seq}`;
  lines.push("", `inference program (${infer}): peak ${formatBytes(plan.infer.memory.peak)}`);
  return lines.join("\n") + "\n";
}

/** What one step reads: a language model's tokens, or a task model's named inputs (each rank's). */
function stepInputsText(plan: Plan): string {
  const inputs = taskInputsOf(plan.train.graph);
  if (inputs.length === 0) return `batch ${plan.train.batch} x seq ${plan.train.seq} = ${plan.train.batch * plan.train.seq} tokens`;
  return `batch ${plan.train.batch}: ` + inputs.map(([name, v]) => `${name} ${v.dtype} ${formatShape(v.shape)}`).join(", ");
}

function predictedText(plan: Plan): string {
  const p = plan.checkpoint.predicted;
  const ms = (s: number) => `${(s * 1000).toFixed(1)} ms`;
  return (
    `predicted step ${ms(p.seconds)}: compute ${ms(p.computeSeconds)}` +
    (p.networkSeconds > 0 ? `, collectives ${ms(p.networkSeconds)}${hiddenText(plan)}` : "") +
    (plan.checkpoint.offload || plan.checkpoint.moved > 0 ? `, link busy ${ms(p.linkSeconds)}, compute waits ${ms(p.stallSeconds)}` : "")
  );
}

function checkpointText(plan: Plan): string {
  const c = plan.checkpoint;
  const total = graphFlops(plan.train.graph);
  const gflop = (f: number) => `${(f / 1e9).toFixed(2)} GFLOP`;
  const lines = [
    `checkpoint ${modeLabel(c)}: recompute ${gflop(c.recomputeFlops)} of ${gflop(total)} per step ` +
      `(${((100 * c.recomputeFlops) / total).toFixed(1)}%)`,
  ];
  for (const r of recomputedList(plan).slice(0, 6))
    lines.push(`  ${r.op.padEnd(24)} x${String(r.count).padEnd(4)} ${gflop(r.flops).padStart(14)}  ${r.loc}`);
  if (c.moved > 0) lines.push(movedText(plan));
  if (plan.candidates.length > 1) {
    lines.push("  plans considered:");
    for (const k of plan.candidates)
      lines.push(
        `    ${(modeLabel(k) + (k.offload ? " +offload" : "")).padEnd(32)} arena ${formatBytes(k.arenaBytes).padStart(10)}  ` +
          `recompute ${gflop(k.recomputeFlops)}  moves ${formatBytes(k.transferBytes)}  predicted ${(k.predicted.seconds * 1000).toFixed(1)} ms` +
          (k === c ? "  <- chosen" : ""),
      );
  }
  return lines.join("\n");
}

function modeLabel(c: Candidate): string {
  return checkpointLabel(c) + (c.moved > 0 && c.moveLookahead !== 1 ? ` (ahead ${c.moveLookahead})` : "");
}

/** The training step's kernels and elementwise traffic, and what the fused groups save of them. */
function fusionJson(plan: Plan) {
  const s = fusionSavings(plan.train.graph);
  return {
    enabled: plan.decisions.fusion,
    groups: s.groups,
    kernels_per_step: s.kernels,
    kernels_saved: s.kernelsSaved,
    elementwise_bytes: s.elementwiseBytes,
    bytes_saved: s.bytesSaved,
  };
}

function fusionText(plan: Plan): string {
  const s = fusionSavings(plan.train.graph);
  if (!plan.decisions.fusion)
    return `fusion     off: ${s.kernels} kernels per step, elementwise traffic ${formatBytes(s.elementwiseBytes)}`;
  return (
    `fusion     ${s.groups} fused groups: ${s.kernels} kernels per step (${s.kernelsSaved} fewer), ` +
    `elementwise traffic ${formatBytes(s.elementwiseBytes)} (${formatBytes(s.bytesSaved)} less)`
  );
}

function decisionsJson(d: PlanDecisions) {
  return {
    backend: d.backend,
    precision: d.precision,
    emulate: d.emulate,
    ranks: d.ranks,
    dp: d.dp,
    zero: d.zero,
    grad_accum: d.gradAccum,
    global_batch: d.globalBatch,
    threads: d.threads,
    clip: d.clip,
    fusion: d.fusion,
    device_budget_bytes: d.deviceBudget ?? null,
    host_budget_bytes: d.hostBudget ?? null,
    disk_budget_bytes: d.diskBudget ?? null,
    requested_checkpoint: d.requestedCheckpoint,
    profiled: d.measured !== undefined,
  };
}

/** The disk tier's bytes a training step reads and writes: its copies from disk and its host AdamW (MemoryPlan.diskIo). */
export function diskBytesPerStep(plan: Plan): { read: number; write: number } {
  let read = 0;
  let write = 0;
  for (const io of plan.train.memory.diskIo.values()) {
    read += io.read;
    write += io.write;
  }
  return { read, write };
}

/** What the disk tier holds: parameters, moments and gradients, counted by parameter. */
function diskContents(plan: Plan): { params: number; moments: number; grads: number } {
  let moments = 0;
  let grads = 0;
  for (const name of plan.persistent.onDisk) {
    if (name.startsWith("opt.m.")) moments++;
    if (name.startsWith("grad.")) grads++;
  }
  return { params: plan.persistent.onDisk.size - 2 * moments - grads, moments, grads };
}

/** Host bytes of the staging buffers model data on disk passes through. */
function stagingBytes(plan: Plan): number {
  const p = plan.persistent;
  const moments = p.diskStage ? 2 * (p.diskStage[1] - p.diskStage[0]) : 0;
  return moments + (p.paramStage ? p.paramStage.loadBytes + p.paramStage.paramBytes : 0) + (p.gradStage ? 2 * p.gradStage.bytes : 0);
}

function diskJson(plan: Plan) {
  const { read, write } = diskBytesPerStep(plan);
  const { params, moments, grads } = diskContents(plan);
  return {
    bytes: plan.diskBytes,
    read_bytes_per_step: read,
    write_bytes_per_step: write,
    moments_on_disk: 2 * moments,
    grads_on_disk: grads,
    params_on_disk: params,
    staging_bytes: stagingBytes(plan),
  };
}

function diskLines(plan: Plan): string[] {
  const { read, write } = diskBytesPerStep(plan);
  const { params, moments, grads } = diskContents(plan);
  const held = [
    `AdamW moments (${moments} parameters')`,
    ...(grads > 0 ? [`gradients (${grads})`] : []),
    ...(params > 0 ? [`parameters (${params})`] : []),
  ].join(", ");
  return [
    `  disk tier: ${formatBytes(plan.diskBytes)} of ${held}; per step ${formatBytes(read)} read, ${formatBytes(write)} written`,
    `    through ${formatBytes(stagingBytes(plan))} of staging buffers in host memory`,
  ];
}
