// A plan reduced to what the planner decided, for comparing plans made by two versions of the planner:
// the chosen candidate and every candidate considered (modes, schedules, peaks, predicted times), and
// hashes of the programs (printed IR with locations) and of every offset the memory plans give. Two
// digests are equal only when the planner made the same plan, byte for byte and offset for offset.
import { createHash } from "node:crypto";
import gpt2 from "../../samples/gpt2.ts";
import { type Candidate, type CompileOptions, type Plan } from "../../plan/plan.ts";
import { DoesNotFitError } from "../../plan/choose.ts";
import { compilePlan } from "../../src/driver/compile.ts";
import { GPU_TARGETS } from "../../src/targets/gpus.ts";
import { printGraph } from "../../ir/printer.ts";
import type { MemoryPlan } from "../../ir/passes/memory_plan.ts";
import { findCapacity } from "../../src/driver/capacity.ts";
import { resolveFamily } from "../../src/driver/family.ts";
import type { ModelChoice } from "../../src/driver/resolve.ts";
import type { ModelConfig } from "../../src/dsl/model.ts";
import type { Target } from "../../src/targets/target.ts";

const hash = (text: string) => createHash("sha256").update(text).digest("hex").slice(0, 16);

function candidateDigest(c: Candidate) {
  const s = c.schedule;
  return {
    mode: c.mode,
    regions: c.regions,
    moved: c.moved,
    moveLookahead: c.moveLookahead,
    offload: c.offload,
    schedule: s && { resident: [...s.resident].sort((a, b) => a - b), lookahead: s.lookahead, keep: [...s.keep].sort((a, b) => a - b) },
    peak: c.peak,
    arenaBytes: c.arenaBytes,
    transferBytes: c.transferBytes,
    movedBytes: c.movedBytes,
    chunkLoads: c.chunkLoads,
    recomputeFlops: c.recomputeFlops,
    // The fields the digests were recorded with: collectives' time is in networkSeconds, not in these.
    predicted: {
      seconds: c.predicted.seconds,
      computeSeconds: c.predicted.computeSeconds,
      linkSeconds: c.predicted.linkSeconds,
      stallSeconds: c.predicted.stallSeconds,
    },
  };
}

function memoryDigest(m: MemoryPlan): string {
  const offsets = [...m.valueOffset].sort((a, b) => a[0] - b[0]).map(([v, o]) => `${v}:${o}${m.hostValues.has(v) ? "h" : ""}`);
  const workspace = [...m.workspace].sort((a, b) => a[0] - b[0]).map(([n, [o, b]]) => `${n}:${o}+${b}`);
  const buffers = m.buffers.map((b) => `${b.key}:${b.kind}:${b.bytes}@${b.offset}[${b.start},${b.end}]`);
  return hash(JSON.stringify([m.peak, m.dynamicBytes, m.breakdown, m.peakPosition, offsets, workspace, buffers]));
}

export function planDigest(p: Plan) {
  return {
    arenaBytes: p.arenaBytes,
    hostBytes: p.hostBytes,
    chunkCapacity: p.chunks.capacity,
    chunkCount: p.chunks.chunks.length,
    chosen: candidateDigest(p.checkpoint),
    candidates: p.candidates.map(candidateDigest),
    trainNodes: p.train.graph.nodes.length,
    trainGraph: hash(printGraph(p.train.graph, { locs: true })),
    inferGraph: hash(printGraph(p.infer.graph, { locs: true })),
    trainMemory: memoryDigest(p.train.memory),
    inferMemory: memoryDigest(p.infer.memory),
    persistent: hash(
      JSON.stringify([[...p.persistent.offsets], [...p.persistent.onHost].sort(), p.persistent.bytes, p.persistent.hostBytes]),
    ),
  };
}

/** A digest, or the planner's refusal (its whole message), so that answers that do not fit compare too. */
export function digestOrRefusal(make: () => Plan) {
  try {
    return planDigest(make());
  } catch (e) {
    if (e instanceof DoesNotFitError) return { refused: e.budget, message: e.message };
    throw e;
  }
}

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const mini = gpt2.presets.mini;
const tiny = { vocab: 512, seq: 32, layers: 2, dim: 64, heads: 4 };
const rtx3090 = GPU_TARGETS["rtx3090-24g"];

/**
 * The configs compared: the plain step, each checkpoint mode, auto under budgets that keep, recompute,
 * move activations and offload model data, clipping off (early updates), tensor parallelism, and a
 * member of the `stow capacity` family on the RTX 3090 profile (the offload schedule search at scale).
 */
export const DIGEST_CONFIGS: { name: string; config: ModelConfig; opts: CompileOptions }[] = [
  { name: "mini plain", config: mini, opts: { batch: 8, seq: 128, threads: 2, clip: true, checkpoint: "none" } },
  {
    name: "mini blocks:2, no clipping",
    config: mini,
    opts: { batch: 8, seq: 128, threads: 2, clip: false, checkpoint: "blocks", checkpointRegions: 2 },
  },
  { name: "mini selective", config: mini, opts: { batch: 8, seq: 128, threads: 2, clip: true, checkpoint: "selective" } },
  {
    name: "mini auto 48MiB",
    config: mini,
    opts: { batch: 8, seq: 128, threads: 2, clip: true, checkpoint: "auto", deviceMemory: 48 * MiB },
  },
  {
    name: "mini auto 100MiB",
    config: mini,
    opts: { batch: 8, seq: 128, threads: 2, clip: true, checkpoint: "auto", deviceMemory: 100 * MiB },
  },
  {
    name: "mini offloaded 70%",
    config: mini,
    opts: { batch: 4, seq: 64, threads: 2, clip: false, checkpoint: "none", deviceMemory: 60 * MiB },
  },
  {
    name: "mini moved 2, blocks:1, 4 Gbit/s",
    config: { ...mini, vocab: 512 },
    opts: { batch: 4, seq: 64, threads: 2, clip: true, checkpoint: "blocks", checkpointRegions: 1, moveActivations: 2, linkGbps: 4 },
  },
  {
    name: "vocab-512 mini auto 16MiB, fast link",
    config: { ...mini, vocab: 512 },
    opts: { batch: 4, seq: 64, threads: 2, clip: true, checkpoint: "auto", deviceMemory: 16 * MiB, linkGbps: 1000 },
  },
  {
    name: "vocab-512 mini auto 16MiB, slow link",
    config: { ...mini, vocab: 512 },
    opts: { batch: 4, seq: 64, threads: 2, clip: true, checkpoint: "auto", deviceMemory: 16 * MiB, linkGbps: 0.01 },
  },
  {
    name: "vocab-512 mini auto 8MiB, model data offloaded",
    config: { ...mini, vocab: 512 },
    opts: { batch: 4, seq: 64, threads: 2, clip: true, checkpoint: "auto", deviceMemory: 8 * MiB, linkGbps: 1000 },
  },
  { name: "tiny auto 2MiB", config: tiny, opts: { batch: 4, seq: 32, threads: 2, clip: true, checkpoint: "auto", deviceMemory: 2 * MiB } },
  { name: "mini tp 2", config: mini, opts: { batch: 8, seq: 128, threads: 2, clip: true, checkpoint: "none", tp: 2 } },
  {
    name: "mini auto, host cap",
    config: mini,
    opts: { batch: 4, seq: 64, threads: 2, clip: true, checkpoint: "auto", deviceMemory: 60 * MiB, hostMemory: 128 * MiB },
  },
  {
    name: "6.7B width, 12 layers, rtx3090",
    config: { ...gpt2.presets["6.7B"], layers: 12 },
    opts: {
      batch: 4,
      seq: 1024,
      threads: 2,
      clip: true,
      checkpoint: "auto",
      deviceMemory: rtx3090.deviceMemory,
      hostMemory: 256 * GiB,
      machine: rtx3090.machine,
    },
  },
];

export function planOf(c: (typeof DIGEST_CONFIGS)[number]): Plan {
  return compilePlan(gpt2, "samples/gpt2.ts", c.config, c.opts);
}

export function digestOf(c: (typeof DIGEST_CONFIGS)[number]) {
  return digestOrRefusal(() => planOf(c));
}

const card = { matmulFlops: 1e12, memoryBandwidth: 100e9, linkBandwidth: 10e9, hostBandwidth: 20e9 };

/**
 * `stow capacity` searches compared: the members planned, which fit and for want of what, and the
 * answer's plan. A small family on a made-up card, and the sample's family on the RTX 2060 profile.
 */
export const CAPACITY_CONFIGS: {
  name: string;
  choice: ModelChoice;
  target: Target;
  budgets: { deviceMemory: number; hostMemory: number };
}[] = [
  {
    name: "vocab-256 width-64 family, 2 MiB device, 4 MiB host",
    choice: { preset: "mini", set: ["vocab=256", "dim=64", "heads=2", "seq=32"], batch: 2 },
    target: { name: "card", description: "a test card", deviceMemory: 2 * MiB, machine: card },
    budgets: { deviceMemory: 2 * MiB, hostMemory: 4 * MiB },
  },
  {
    name: "gpt2 family on rtx2060-6g, 64 GiB host, batch 4 x 1024",
    choice: { batch: 4, seq: 1024 },
    target: { name: "rtx2060-6g", ...GPU_TARGETS["rtx2060-6g"] },
    budgets: { deviceMemory: GPU_TARGETS["rtx2060-6g"].deviceMemory, hostMemory: 64 * GiB },
  },
];

export function capacityDigest(c: (typeof CAPACITY_CONFIGS)[number]) {
  const family = resolveFamily({ path: "samples/gpt2.ts", module: gpt2 }, c.choice);
  const found = findCapacity(family, "samples/gpt2.ts", c.target, c.budgets, { threads: 2, clip: true, checkpoint: "auto" });
  return {
    member: found.member,
    params: found.params,
    guess: found.guess,
    probes: found.probes.map((p) => ({ member: p.member, fits: p.fits, lacks: p.lacks, reason: p.reason })),
    plan: planDigest(found.plan),
  };
}
