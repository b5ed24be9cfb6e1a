// How long a training step takes, predicted before it runs: each node's compute time from a machine
// profile (or from times measured in a profiled warm-up), and the offload schedule's copies and host
// AdamW played out on their own queues, as the transfer engine runs them. The planner uses it to choose
// between schedules that fit; the plan report shows it next to measured times.
import { lmHeadWork, nodeFlops } from "./flops.ts";
import { collectiveBytes } from "./collectives.ts";
import { attentionDims, isComputeOp, opKind } from "./ops.ts";
import { type Graph, type Node, type Value, formatShape, numel, valueBytes } from "./types.ts";

export interface Machine {
  /** Sustained FLOP/s of products (matmul, attention, the fused LM head) where no measured rate below applies. */
  matmulFlops: number;
  /** Bytes per second that elementwise and data-movement kernels stream (reads plus writes), where no measured rate below applies. */
  memoryBandwidth: number;
  /** Host-device link, bytes per second in each direction (full duplex, as PCIe is); copies of one direction take turns. */
  linkBandwidth: number;
  /** Host memory bandwidth for AdamW on offloaded chunks. */
  hostBandwidth: number;
  /**
   * The disk tier's sequential bandwidth, bytes per second, reading and writing model data in large
   * blocks from several threads. Absent: the machine has no disk tier figure.
   */
  diskReadBandwidth?: number;
  diskWriteBandwidth?: number;
  /**
   * Measured sgemm rates by the size of one call, ascending: a product runs at the rate interpolated at
   * its FLOPs per call (small products run well below the large ones). Absent: matmulFlops for all.
   */
  productRates?: readonly SizedRate[];
  /**
   * Measured stream bandwidths by the bytes a kernel moves, ascending: the working set of a small
   * kernel stays in cache, a large one's streams from memory. Absent: memoryBandwidth for all.
   */
  streamRates?: readonly SizedRate[];
  /** Stowage's attention kernels, measured on a grid of T and D. Absent: attention at matmulFlops. */
  attentionRates?: AttentionRates;
  /** Logits per second of the fused LM head's softmax pass. Absent: its FLOPs at matmulFlops. */
  softmaxRate?: number;
  /**
   * Elements (of the first input) per second of kernels measured one by one, by op: those that compute or
   * gather more than a stream does (GELU, LayerNorm, transposes, AdamW). Ops not named here, or all when
   * absent: their bytes at memoryBandwidth.
   */
  elementRates?: Readonly<Record<string, number>>;
  /** The link between ranks. Absent: a collective costs its bytes streamed once, as a copy on the device. */
  network?: NetworkLink;
}

/**
 * The link between the ranks of a group as a ring collective sees it: the bytes per second each rank
 * sends while it receives as many (what NCCL's tests call bus bandwidth), and the latency of one step
 * around the ring.
 */
export interface NetworkLink {
  bandwidth: number;
  latency: number;
}

/** How many ranks each kind of group has: those a tensor is split over, and those the batch is. */
export interface Mesh {
  tp: number;
  dp: number;
}

/** A rate measured at one size: FLOPs of one sgemm call and FLOP/s, or bytes a kernel moves and bytes/s. */
export interface SizedRate {
  size: number;
  rate: number;
}

/** FLOP/s (as ir/flops.ts counts them) of the attention kernels; forward[i][j] is at T[i], D[j]. */
export interface AttentionRates {
  T: readonly number[];
  D: readonly number[];
  forward: readonly (readonly number[])[];
  backward: readonly (readonly number[])[];
}

/**
 * This machine's two cores, roughly (bench/RESULTS.md measures the sgemm peak at about 100 GFLOP/s with
 * the right OpenBLAS kernels); an unthrottled link is a memcpy.
 */
export const CPU_DEFAULTS: Machine = { matmulFlops: 100e9, memoryBandwidth: 8e9, linkBandwidth: 8e9, hostBandwidth: 8e9 };

/** Measured seconds per node signature (op, shapes, attributes): what a profiled warm-up found. */
export type MeasuredTimes = ReadonlyMap<string, number>;

/** Identifies a node's work across plans: the same op on the same shapes costs the same. */
export function nodeSignature(n: Node): string {
  const attrs = Object.entries(n.attrs)
    .filter(([k]) => k !== "name" && k !== "recompute")
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
  return `${n.op}(${n.inputs.map((v) => formatShape(v.shape)).join(",")}){${attrs}}`;
}

/** AdamW streams p, g, m, v in and p, m, v out. */
const ADAMW_BYTES_PER_ELEMENT = 28;

/** `mesh` gives the collectives' group sizes; it is needed when the machine has a network link. */
export function nodeSeconds(n: Node, m: Machine, measured?: MeasuredTimes, mesh?: Mesh): number {
  // Sources and views run nothing; copies run on the link and waits cost only their stall (simulateStep).
  if (!isComputeOp(n.op)) return 0;
  const known = measured?.get(nodeSignature(n));
  if (known !== undefined) return known;
  if (m.network && opKind(n.op) === "collective") {
    if (!mesh) throw new Error(`internal: ${n.op} costed over a network link without the ranks' mesh`);
    return collectiveSeconds(n, m.network, mesh);
  }
  switch (n.op) {
    case "matmul": {
      // A batched matmul is one sgemm call per matrix of the output.
      const out = n.outputs[0].shape;
      const calls = numel(out) / (out[out.length - 2] * out[out.length - 1]);
      const flops = nodeFlops(n);
      return flops / productRate(m, flops / calls);
    }
    case "attention":
    case "attention_bwd": {
      if (!m.attentionRates) return nodeFlops(n) / m.matmulFlops;
      const { T, D } = attentionDims(n.inputs[0].shape);
      return nodeFlops(n) / attentionRate(m.attentionRates, n.op === "attention" ? "forward" : "backward", T, D);
    }
    case "linear_cross_entropy":
    case "linear_cross_entropy_bwd": {
      // Its tiles' sgemms, then a softmax pass over each tile of logits.
      const w = lmHeadWork(n);
      const products = w.productFlops / productRate(m, w.tileFlops);
      return products + (m.softmaxRate ? w.logits / m.softmaxRate : (w.flopsPerLogit * w.logits) / m.matmulFlops);
    }
    default: {
      const rate = m.elementRates?.[n.op];
      if (rate !== undefined) return numel(n.inputs[0].shape) / rate;
      const bytes = [...n.inputs, ...n.outputs].reduce((s: number, v: Value) => s + valueBytes(v), 0);
      return bytes / sizedRate(m.streamRates, bytes, m.memoryBandwidth);
    }
  }
}

/**
 * A collective over a ring of p ranks (NCCL's ring algorithms, and MPI's for large messages): an
 * all-reduce of S bytes sends 2 (p - 1) / p S from each rank in 2 (p - 1) steps; an all-gather or a
 * reduce-scatter whose whole tensor is S bytes, half of that; a broadcast, pipelined along the ring, S
 * in p - 1 steps.
 */
export function collectiveSeconds(n: Node, link: NetworkLink, mesh: Mesh): number {
  // S is the whole tensor the collective combines, as the plan and the runtime count it.
  const ring = (p: number, passes: number) =>
    p <= 1 ? 0 : passes * (((p - 1) / p) * (collectiveBytes(n) / link.bandwidth) + (p - 1) * link.latency);
  switch (n.op) {
    case "all_reduce":
      return ring(n.attrs.group === "dp" ? mesh.dp : mesh.tp, 2);
    case "all_gather":
    case "zero_all_gather":
    case "reduce_scatter":
    case "zero_reduce_scatter":
    case "zero_gather":
      return ring(n.attrs.ranks, 1);
    case "broadcast":
      return mesh.tp <= 1 ? 0 : collectiveBytes(n) / link.bandwidth + (mesh.tp - 1) * link.latency;
    default:
      throw new Error(`internal: no network cost for collective ${n.op}`);
  }
}

/** FLOP/s of one sgemm call of `flops`: the measured rates interpolated on log scales, held flat past the ends. */
export function productRate(m: Machine, flops: number): number {
  return sizedRate(m.productRates, flops, m.matmulFlops);
}

/** The rate at `size` from rates measured by size (log scales, flat past the ends), or `otherwise` without them. */
export function sizedRate(rates: readonly SizedRate[] | undefined, size: number, otherwise: number): number {
  if (!rates || rates.length === 0) return otherwise;
  return logInterpolate(
    rates.length,
    (i) => rates[i].size,
    (i) => rates[i].rate,
    size,
  );
}

/** The attention kernels' FLOP/s at T and D: bilinear on log scales over the measured grid, held flat past its edges. */
export function attentionRate(a: AttentionRates, pass: "forward" | "backward", T: number, D: number): number {
  const grid = a[pass];
  const atD = (i: number) =>
    logInterpolate(
      a.D.length,
      (j) => a.D[j],
      (j) => grid[i][j],
      D,
    );
  return logInterpolate(a.T.length, (i) => a.T[i], atD, T);
}

/**
 * y at `at`, from `count` points (x ascending), piecewise linear in log x and log y, and constant beyond the
 * first and last. Points by accessor, so the planner's many predictions allocate nothing.
 */
function logInterpolate(count: number, x: (i: number) => number, y: (i: number) => number, at: number): number {
  if (at <= x(0)) return y(0);
  for (let i = 1; i < count; i++) {
    if (at <= x(i)) {
      const f = Math.log(at / x(i - 1)) / Math.log(x(i) / x(i - 1));
      return y(i - 1) * (y(i) / y(i - 1)) ** f;
    }
  }
  return y(count - 1);
}

export interface StepTime {
  /** Predicted wall time of one step. */
  seconds: number;
  /** Device compute alone. */
  computeSeconds: number;
  /** Time the collectives take: the transfers between ranks. */
  networkSeconds: number;
  /** The part of it hidden behind compute: overlapped collectives' time less compute's waits for them. */
  hiddenNetworkSeconds: number;
  /** Time the busier direction of the link is busy. */
  linkSeconds: number;
  /** Time compute waits for copies and host work. */
  stallSeconds: number;
}

/** Where a node's work runs in the played-out step: the device's compute, a direction of the link, the host. */
export type Lane = "compute" | "h2d" | "d2h" | "host";

/** Told of each node that takes time as the step is played out (the predicted trace). */
export type StepRecorder = (n: Node, lane: Lane, start: number, seconds: number) => void;

/** The disk tier's rate each way where a machine gives none: a stated guess, a SATA SSD's order. */
export const DISK_DEFAULT_BANDWIDTH = 0.5e9;

/** What a play-out may be told beyond the program and the machine. */
export interface StepOptions {
  /** Node times a profiled warm-up measured, used in place of the model's. */
  measured?: MeasuredTimes;
  /** Told of each node's work as it is played out. */
  record?: StepRecorder;
  /** The ranks in each group, for collectives over a network link (default: one rank). */
  mesh?: Mesh;
  /**
   * Node id -> the disk tier's bytes it reads and writes (MemoryPlan.diskIo), at the machine's disk
   * rates: a chunk's copy from disk reads before it crosses the link, a gradient's copy to disk writes
   * after; host AdamW of model data on disk reads ahead and writes behind its update, its reads and
   * writes one after the other on the disk, overlapped with the update.
   */
  diskIo?: ReadonlyMap<number, { read: number; write: number }>;
}

/**
 * Plays the step out: compute and collectives in program order (a collective holds the device's stream
 * until it completes, as NCCL's on the compute stream and MPI's blocking calls do), except collectives
 * that have a `wait` (ir/passes/overlap_collectives.ts): those run one after another on the network,
 * each from its issue point, and compute waits for one only at its `wait`; copies on their direction of
 * the link in the order they are issued, each starting when both that direction and its issue point are
 * reached; AdamW on the host (placed there by the offload pass) after its gradient's copy.
 */
export function simulateStep(g: Graph, m: Machine, { measured, record, mesh = { tp: 1, dp: 1 }, diskIo }: StepOptions = {}): StepTime {
  let device = 0;
  let host = 0;
  let compute = 0;
  let network = 0;
  let stall = 0;
  let net = 0; // when the network is next free for an overlapped collective
  let overlapped = 0;
  let networkStall = 0; // compute waiting for overlapped collectives
  const waitedFor = new Set<number>(); // collectives that have a wait: they run beside compute
  for (const n of g.nodes) if (n.op === "wait" && opKind(n.inputs[0].producer.op) === "collective") waitedFor.add(n.inputs[0].producer.id);
  const link = { h2d: 0, d2h: 0 }; // when each direction is next free
  const busy = { h2d: 0, d2h: 0 };
  const ready = new Map<number, number>(); // value id -> when its copy arrives
  const diskSeconds = (n: Node) => {
    const io = diskIo?.get(n.id);
    if (io === undefined) return 0;
    return io.read / (m.diskReadBandwidth ?? DISK_DEFAULT_BANDWIDTH) + io.write / (m.diskWriteBandwidth ?? DISK_DEFAULT_BANDWIDTH);
  };
  const onLink = (n: Node, v: Value, direction: "h2d" | "d2h") => {
    // The same worker reads a chunk from disk and then copies it over the link.
    const seconds = diskSeconds(n) + valueBytes(v) / m.linkBandwidth;
    record?.(n, direction, Math.max(link[direction], device), seconds);
    link[direction] = Math.max(link[direction], device) + seconds;
    busy[direction] += seconds;
    ready.set(v.id, link[direction]);
  };
  for (const n of g.nodes) {
    if (n.op === "chunk_h2d") onLink(n, n.outputs[0], "h2d");
    else if (n.op === "copy_d2h") onLink(n, n.outputs[0], "d2h");
    else if (waitedFor.has(n.id)) {
      const seconds = nodeSeconds(n, m, measured, mesh);
      const start = Math.max(net, device);
      record?.(n, "compute", start, seconds); // the trace puts collectives on their own track
      net = start + seconds;
      ready.set(n.outputs[0].id, net);
      network += seconds;
      overlapped += seconds;
    } else if (n.op === "wait") {
      const until = ready.get(n.inputs[0].id) ?? device;
      if (waitedFor.has(n.inputs[0].producer.id)) networkStall += Math.max(0, until - device);
      else stall += Math.max(0, until - device);
      device = Math.max(device, until);
    } else if (n.op === "adamw" && n.placement === "host") {
      const after = ready.get(n.inputs[1].id) ?? device;
      // With model data on disk, the disk pipeline reads ahead and writes behind the update
      // (runtime/core/disk_pipeline.h): the slower of the two, not their sum.
      const seconds = Math.max((ADAMW_BYTES_PER_ELEMENT * numel(n.inputs[0].shape)) / m.hostBandwidth, diskSeconds(n));
      record?.(n, "host", Math.max(host, after, device), seconds);
      host = Math.max(host, after, device) + seconds;
    } else {
      const seconds = nodeSeconds(n, m, measured, mesh);
      if (isComputeOp(n.op)) record?.(n, "compute", device, seconds);
      device += seconds;
      if (opKind(n.op) === "collective") network += seconds;
      else compute += seconds;
    }
  }
  const end = Math.max(device, link.h2d, link.d2h, host, net);
  return {
    seconds: end,
    computeSeconds: compute,
    networkSeconds: network,
    hiddenNetworkSeconds: Math.max(0, overlapped - networkStall),
    linkSeconds: Math.max(busy.h2d, busy.d2h),
    stallSeconds: stall + (end - device),
  };
}

/**
 * One H100 with the CUDA backend, roughly: products at a blend of cuBLAS's bf16 rate and the simple
 * attention kernels' fp32 rate, HBM3 for elementwise kernels, PCIe 5 with pinned memory for copies, and
 * several host cores for AdamW on offloaded chunks. Guesses to be replaced by measurements
 * (scripts/gpu-check.sh prints what the GPU achieved).
 */
export const H100_DEFAULTS: Machine = { matmulFlops: 100e12, memoryBandwidth: 2.5e12, linkBandwidth: 25e9, hostBandwidth: 20e9 };

/**
 * The mean of two measurements of one machine (rate by rate, point by point): a profile for a run that
 * took place between them. Both must come from the same probe, so their tables have the same sizes.
 */
export function meanMachine(a: Machine, b: Machine): Machine {
  const mean = (x: number, y: number) => (x + y) / 2;
  const same = <T>(x: readonly T[], y: readonly T[]) => x.length === y.length && x.every((v, i) => v === y[i]);
  const present = (m: Machine) =>
    [m.productRates, m.streamRates, m.attentionRates, m.softmaxRate, m.elementRates].map((x) => x !== undefined);
  if (!same(present(a), present(b)) || !same(Object.keys(a.elementRates ?? {}).sort(), Object.keys(b.elementRates ?? {}).sort()))
    throw new Error("meanMachine: the two machines were not measured alike");
  const sized = (x: readonly SizedRate[] | undefined, y: readonly SizedRate[] | undefined) => {
    if (!x || !y) return undefined;
    if (
      !same(
        x.map((p) => p.size),
        y.map((p) => p.size),
      )
    )
      throw new Error("meanMachine: the measured sizes differ");
    return x.map((p, i) => ({ size: p.size, rate: mean(p.rate, y[i].rate) }));
  };
  const aa = a.attentionRates,
    ab = b.attentionRates;
  if (aa && ab && !(same(aa.T, ab.T) && same(aa.D, ab.D))) throw new Error("meanMachine: the attention grids differ");
  const grid = (x: readonly (readonly number[])[], y: readonly (readonly number[])[]) =>
    x.map((row, i) => row.map((v, j) => mean(v, y[i][j])));
  const productRates = sized(a.productRates, b.productRates),
    streamRates = sized(a.streamRates, b.streamRates);
  return {
    matmulFlops: mean(a.matmulFlops, b.matmulFlops),
    memoryBandwidth: mean(a.memoryBandwidth, b.memoryBandwidth),
    linkBandwidth: mean(a.linkBandwidth, b.linkBandwidth),
    hostBandwidth: mean(a.hostBandwidth, b.hostBandwidth),
    ...(a.diskReadBandwidth &&
      b.diskReadBandwidth && {
        diskReadBandwidth: mean(a.diskReadBandwidth, b.diskReadBandwidth),
        diskWriteBandwidth: mean(a.diskWriteBandwidth!, b.diskWriteBandwidth!),
      }),
    ...(productRates && { productRates }),
    ...(streamRates && { streamRates }),
    ...(aa &&
      ab && { attentionRates: { T: aa.T, D: aa.D, forward: grid(aa.forward, ab.forward), backward: grid(aa.backward, ab.backward) } }),
    ...(a.softmaxRate && b.softmaxRate && { softmaxRate: mean(a.softmaxRate, b.softmaxRate) }),
    ...(a.elementRates &&
      b.elementRates && {
        elementRates: Object.fromEntries(Object.entries(a.elementRates).map(([op, r]) => [op, mean(r, b.elementRates![op])])),
      }),
  };
}
