// What `stow capacity` prints: the largest member that fits, the width and micro-batch chosen for it,
// its plan in brief, the predicted step time and throughput on the target, the train command that runs
// it, the assumptions behind them, and how the searches went. Text for people, JSON for tools (the bench
// reads it).
import { DISK_DEFAULT_BANDWIDTH } from "../../ir/cost_model.ts";
import { graphFlops } from "../../ir/flops.ts";
import { valueBytes } from "../../ir/types.ts";
import { formatBytes } from "../../base/units.ts";
import type { Capacity } from "./capacity.ts";
import type { Choice, Choices } from "./capacity_choices.ts";
import type { Plan } from "../../plan/plan.ts";
import { checkpointLabel } from "./moved_report.ts";

const ASSUMPTIONS = [
  "fp32 training (this backend has no fp16/bf16 yet): 16 bytes of model data a parameter (parameters, gradients, " +
    "AdamW first and second moments, 4 bytes each), activations in fp32",
  "the step time is the planner's cost model played out on the target's numbers: products at its matmul rate, " +
    "other kernels at its memory bandwidth, copies in issue order on one host-device link, AdamW of offloaded chunks " +
    "at its host bandwidth; kernel launch overheads and the first steps' warm-up are not modelled",
  "published single-GPU capacity records (e.g. an 18B-parameter GPT on one RTX 3090 with Colossal-AI's Gemini or " +
    "PatrickStar) train in mixed precision: fp16 parameters and activations on the device halve activation and copy bytes; " +
    "their model data is also about 16 bytes a parameter (fp16 parameter and gradient, fp32 master copy and moments)",
];

/** The host memory each rank's process may use: the machine's, split evenly (capacity.ts). */
function perRankHost(c: Capacity): number {
  return Math.floor(c.hostMemory / (c.plan.decisions.dp * c.plan.decisions.ranks));
}

function moved(plan: Plan): { h2d: number; d2h: number } {
  const bytes = (op: string) => plan.train.graph.nodes.filter((n) => n.op === op).reduce((s, n) => s + valueBytes(n.outputs[0]), 0);
  return { h2d: bytes("chunk_h2d"), d2h: bytes("copy_d2h") };
}

/** FLOPs a step computes, and those of the model (recomputed forwards not counted). */
function stepFlops(plan: Plan): { all: number; model: number } {
  const all = graphFlops(plan.train.graph);
  return { all, model: all - plan.checkpoint.recomputeFlops };
}

const searchSeconds = (c: Capacity) => c.probes.reduce((s, q) => s + q.seconds, 0);
const planCount = (c: Capacity) => c.probes.filter((q) => q.seconds > 0).length;
const microBatch = (p: Plan) => p.decisions.globalBatch / (p.decisions.dp * p.decisions.gradAccum);

function choiceJson(ch: Choice): object {
  const f = ch.found;
  return {
    preset: ch.family.preset ?? null,
    grad_accum: ch.gradAccum,
    most_params: ch.mostParams ?? null,
    plans: ch.plans,
    seconds: ch.seconds,
    largest: f ? { label: f.family.label(f.member), param_count: f.params } : null,
    checked: ch.checked ? { label: ch.family.label(ch.checked.member), fits: ch.checked.fits } : null,
    reason: ch.reason ?? null,
  };
}

export function capacityJson(all: Choices, command: string[]): object {
  const c = all.best;
  const p = c.plan;
  const step = p.checkpoint.predicted;
  const tokens = p.decisions.globalBatch * p.train.seq;
  const { h2d, d2h } = moved(p);
  const flops = stepFlops(p);
  return {
    model: p.modelPath,
    family: { rule: c.family.rule, field: c.family.field ?? null },
    target: { name: c.target.name, description: c.target.description, device_memory_bytes: c.deviceMemory, machine: c.target.machine },
    host_memory_bytes: c.hostMemory,
    disk_memory_bytes: c.diskMemory ?? null,
    ranks: { dp: p.decisions.dp, tp: p.decisions.ranks, zero: p.decisions.zero, host_memory_bytes_per_rank: perRankHost(c) },
    largest: {
      member: c.member,
      label: c.family.label(c.member),
      preset: c.family.preset ?? null,
      config: p.config,
      param_count: c.params,
    },
    next: c.next
      ? { member: c.next.member, label: c.family.label(c.next.member), lacks: c.next.lacks, reason: c.next.reason ?? null }
      : null,
    plan: {
      batch: p.train.batch,
      seq: p.train.seq,
      grad_accum: p.decisions.gradAccum,
      micro_batch: microBatch(p),
      device_peak_bytes: p.train.memory.peak,
      arena_bytes: p.arenaBytes,
      host_bytes: p.hostBytes,
      disk_bytes: p.diskBytes,
      offload: p.checkpoint.offload,
      checkpoint: p.checkpoint.mode,
      checkpoint_regions: p.checkpoint.regions,
      total_regions: p.checkpoint.totalRegions,
      moved_regions: p.checkpoint.moved,
      recompute_flops: p.checkpoint.recomputeFlops,
      step_flops: flops.all,
      chunks: p.chunks.chunks.length,
      chunk_capacity_bytes: p.chunks.capacity,
      resident_chunks: p.checkpoint.offload ? p.checkpoint.schedule!.resident.size : p.chunks.chunks.length,
      lookahead: p.checkpoint.schedule?.lookahead ?? 0,
      h2d_bytes_per_step: h2d,
      d2h_bytes_per_step: d2h,
    },
    predicted: {
      step_seconds: step.seconds,
      compute_seconds: step.computeSeconds,
      network_seconds: step.networkSeconds,
      link_seconds: step.linkSeconds,
      stall_seconds: step.stallSeconds,
      tokens_per_step: tokens,
      tokens_per_s: tokens / step.seconds,
      flops_per_s: flops.all / step.seconds,
      model_flops_per_s: flops.model / step.seconds,
    },
    choices: all.choices.map(choiceJson),
    train_command: command,
    search: {
      guess: c.guess,
      plans: planCount(c),
      seconds: searchSeconds(c),
      all_plans: all.choices.reduce((n, ch) => n + ch.plans, 0),
      all_seconds: all.choices.reduce((t, ch) => t + ch.seconds, 0),
      probes: c.probes.map((q) => ({
        member: q.member,
        fits: q.fits,
        lacks: q.lacks ?? null,
        seconds: q.seconds,
        reason: q.reason ?? null,
      })),
    },
    assumptions: ASSUMPTIONS,
  };
}

/** One line per width and micro-batch weighed: its answer, or why it has none. */
function choiceLine(ch: Choice, micro: number): string {
  const width = ch.family.preset !== undefined ? `preset ${ch.family.preset}'s width` : "the presets";
  const what = `${width}, micro-batch ${micro} (--grad-accum ${ch.gradAccum})`;
  const cost = ch.plans > 0 ? ` (${ch.plans} ${ch.plans === 1 ? "plan" : "plans"}, ${ch.seconds.toFixed(1)} s)` : "";
  if (ch.found) return `  ${what}: ${ch.found.family.label(ch.found.member)}, ${billions(ch.found.params)}${cost}`;
  if (ch.checked)
    return `  ${what}: ${ch.family.label(ch.checked.member)} ${ch.checked.fits ? "fits too" : "does not fit"} (the most micro-batches' answer, checked)${cost}`;
  return `  ${what}: ${ch.reason}${cost}`;
}

const billions = (n: number) =>
  n >= 1e9 ? `${(n / 1e9).toFixed(2)} B` : n >= 1e6 ? `${(n / 1e6).toFixed(1)} M` : `${n.toLocaleString("en-US")} parameters`;

export function capacityText(all: Choices, command: string): string {
  const c = all.best;
  const p = c.plan;
  const ranks = p.decisions.dp * p.decisions.ranks;
  const m = c.target.machine;
  const step = p.checkpoint.predicted;
  const tokens = p.decisions.globalBatch * p.train.seq;
  const { h2d, d2h } = moved(p);
  const flops = stepFlops(p);
  const total = flops.all;
  const s = (x: number) => (x >= 10 ? `${x.toFixed(1)} s` : x >= 0.1 ? `${x.toFixed(2)} s` : `${(x * 1000).toFixed(1)} ms`);
  const rate = (x: number, unit: string) => `${x >= 1e12 ? `${(x / 1e12).toFixed(1)} T` : `${(x / 1e9).toFixed(1)} G`}${unit}`;
  const mode = checkpointLabel(p.checkpoint);
  const chunks = p.checkpoint.offload
    ? `${p.chunks.chunks.length} chunks of at most ${formatBytes(p.chunks.capacity)}, ${p.checkpoint.schedule!.resident.size} ` +
      `of them on the device, copies start ${p.checkpoint.schedule!.lookahead} loads ahead`
    : "model data resident on the device (nothing offloaded)";
  const planned = c.probes.filter((q) => q.seconds > 0);
  return (
    [
      `target     ${c.target.name}: ${c.target.description}`,
      ranks > 1
        ? `memory     ${ranks} ranks (--dp ${p.decisions.dp} --zero ${p.decisions.zero}${p.decisions.ranks > 1 ? ` --tp ${p.decisions.ranks}` : ""}): ` +
          `device ${formatBytes(c.deviceMemory)} each, host ${formatBytes(c.hostMemory)} shared (${formatBytes(perRankHost(c))} a rank)`
        : `memory     device ${formatBytes(c.deviceMemory)}, host ${formatBytes(c.hostMemory)}` +
          (c.diskMemory !== undefined ? `, disk ${formatBytes(c.diskMemory)}` : ""),
      `family     ${c.family.rule}`,
      "",
      `largest    ${c.family.label(c.member)}${c.family.preset !== undefined ? ` at preset ${c.family.preset}'s width` : ""}: ` +
        `${c.params.toLocaleString("en-US")} parameters (${c.params >= 1e9 ? `${(c.params / 1e9).toFixed(2)} B` : `${(c.params / 1e6).toFixed(1)} M`}), micro-batch ${microBatch(p)} x --grad-accum ${p.decisions.gradAccum}`,
      `           ${Object.entries(p.config)
        .map(([k, v]) => `${k}=${v}`)
        .join(" ")}`,
      c.next
        ? `next       ${c.family.label(c.next.member)} does not fit: ${c.next.reason}`
        : "next       (the family has no larger member)",
      "",
      `step       batch ${p.decisions.globalBatch} x seq ${p.train.seq} = ${tokens} tokens` +
        (ranks > 1 ? ` (${p.train.batch} ${p.train.batch === 1 ? "sequence" : "sequences"} a rank)` : ""),
      `plan${ranks > 1 ? " (a rank)" : "      "} device peak ${formatBytes(p.train.memory.peak)} (arena ${formatBytes(p.arenaBytes)}), model data in host memory ${formatBytes(p.hostBytes)}` +
        (p.diskBytes > 0 ? `, model data on disk ${formatBytes(p.diskBytes)}` : ""),
      `           checkpoint ${mode}: recompute ${((100 * p.checkpoint.recomputeFlops) / total).toFixed(1)}% of the step's ${(total / 1e12).toFixed(1)} TFLOP`,
      `           ${chunks}`,
      `           moved per step: ${formatBytes(h2d)} host to device, ${formatBytes(d2h)} device to host`,
      `predicted  step ${s(step.seconds)} (compute ${s(step.computeSeconds)}, ` +
        (step.networkSeconds > 0 ? `collectives ${s(step.networkSeconds)}, ` : "") +
        `link busy ${s(step.linkSeconds)}, ` +
        `compute waits ${s(step.stallSeconds)}): ${(tokens / step.seconds).toFixed(tokens / step.seconds >= 100 ? 0 : 2)} tokens/s, ` +
        `${rate(flops.model / step.seconds, "FLOP/s")} (${rate(flops.all / step.seconds, "FLOP/s")} with recompute)`,
      "",
      `train      ${command}`,
      ...(command.includes(" DIR") ? ["           (DIR: a folder on the disk the tier is for)"] : []),
      "",
      `weighed    the largest over ${all.choices.length === 1 ? "one choice" : `${all.choices.length} choices`} of width and micro-batch (the global batch stays ${p.decisions.globalBatch}):`,
      ...all.choices.map((ch) => choiceLine(ch, p.decisions.globalBatch / (p.decisions.dp * ch.gradAccum))),
      "",
      "assumptions",
      `  target: matmul ${rate(m.matmulFlops, "FLOP/s")}${m.productRates ? " at the largest measured size (smaller products at their measured rates)" : ""}, ` +
        `device memory ${rate(m.memoryBandwidth, "B/s")}${m.streamRates ? " at the largest measured size (smaller kernels at their measured rates)" : ""}, host-device link ${rate(m.linkBandwidth, "B/s")}, host AdamW ${rate(m.hostBandwidth, "B/s")}` +
        (c.diskMemory !== undefined
          ? `, disk read ${rate(m.diskReadBandwidth ?? DISK_DEFAULT_BANDWIDTH, "B/s")}, write ${rate(m.diskWriteBandwidth ?? DISK_DEFAULT_BANDWIDTH, "B/s")}`
          : "") +
        `${m.attentionRates ? "; attention kernels and the LM head's softmax as measured" : ""}`,
      ...ASSUMPTIONS.map((a) => `  ${a}`),
      "",
      `search     ${planned.length} plans in ${searchSeconds(c).toFixed(1)} s for this choice, from the guess ${c.family.label(c.guess)} ` +
        (c.diskMemory !== undefined
          ? "(model data at 16 bytes a parameter filling device and host; the disk tier then lets it climb): "
          : "(model data at 16 bytes a parameter filling device and host): ") +
        c.probes.map((q) => `${c.family.label(q.member)} ${q.fits ? "fits" : "no"}`).join(", ") +
        (all.choices.length > 1
          ? `; ${all.choices.reduce((n, ch) => n + ch.plans, 0)} plans in ${all.choices.reduce((t, ch) => t + ch.seconds, 0).toFixed(1)} s in all`
          : ""),
    ].join("\n") + "\n"
  );
}
