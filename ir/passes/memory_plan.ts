// The memory plan of a program: persistent model data (parameters, then AdamW moments) at fixed offsets
// at the bottom of the arena, and every temporary (activations, gradients, workspaces, inputs) at a
// static offset above it, from liveness and best-fit placement. Predicts the arena high-water mark and
// breaks it down by kind at the moment the most bytes are live.
import { type Graph, type ParamInfo, type Value, numel, trainedParams } from "../types.ts";
import { type Placement, alignUp, placeBuffersWithin } from "./arena_plan.ts";
import { type BufferKind, type LiveBuffer, type Liveness, liveness } from "./liveness.ts";
import { type ChunkLayout, type ZeroSharding, paramShardName, shardElements } from "./chunks.ts";

export interface PersistentLayout {
  /** Parameter, moment (opt.m.<name>, opt.v.<name>) or host gradient (grad.<name>) name -> byte offset in its region. */
  offsets: Map<string, number>;
  /** Names whose storage is the host region; every other name lives at the bottom of the arena. */
  onHost: Set<string>;
  /** Bytes of each kind in the arena's persistent region. */
  paramBytes: number;
  optStateBytes: number;
  /** Size of the persistent region at the bottom of the arena (aligned). */
  bytes: number;
  /** Size of the host region: offloaded parameters (chunk by chunk), their moments and gradients. */
  hostBytes: number;
  /** Host byte range [start, end) of each offloaded chunk's parameters (in host memory). */
  chunkRange: Map<number, [number, number]>;
  /**
   * Parameters, moments (opt.m.<name>, opt.v.<name>) and host copies of gradients (grad.<name>) kept in
   * the disk tier; their offsets are in the disk tier's file.
   */
  onDisk: Set<string>;
  /** Size of the disk tier (whole blocks). */
  diskBytes: number;
  /**
   * Host offsets of the two staging buffers host AdamW reads a parameter's moments from the disk tier
   * into (each the largest such moment, in whole blocks); absent without a disk tier.
   */
  diskStage?: [number, number];
  /**
   * With parameters on disk, two more staging buffers in the host region: `load`, where a chunk's
   * parameters land on their way from disk to the device (the largest such chunk, in whole blocks), and
   * `param`, where host AdamW reads the blocks holding one parameter (the most blocks any one spans).
   */
  paramStage?: { load: number; loadBytes: number; param: number; paramBytes: number };
  /**
   * With gradients on disk, two more: `copy`, where a gradient lands from the device on its way to disk
   * (and where its sums of squares for the gradient norm are taken), and `update`, where host AdamW
   * reads them (the disk pipeline's slots); each the largest such gradient, in whole blocks.
   */
  gradStage?: { copy: number; update: number; bytes: number };
  /** ZeRO 3: parameters no rank holds whole, so without an offset; their chunks' shards hold them. */
  sharded: ReadonlySet<string>;
}

/** The disk tier's unit: offsets and sizes in it are whole blocks, as O_DIRECT needs (runtime/core/disk_tier.h). */
export const DISK_BLOCK = 4096;
export const diskBlocks = (bytes: number) => Math.ceil(bytes / DISK_BLOCK) * DISK_BLOCK;
/** Bytes of the whole blocks that hold [offset, offset + bytes) of the disk tier: what moving that range moves. */
export const diskSpan = (offset: number, bytes: number) => diskBlocks(offset + bytes) - Math.floor(offset / DISK_BLOCK) * DISK_BLOCK;

/** The disk pipeline's slots (runtime/core/disk_pipeline.h): one piece read ahead, one updated, one written behind. */
export const DISK_SLOTS = 3;

/**
 * How host AdamW of model data on disk splits the planned staging buffers into the disk pipeline's
 * ring: `slots` slots of `piece` elements (whole blocks) in each of the moments' and the gradients'
 * buffers, and of piece + one block's elements in the parameters' (a parameter on disk starts anywhere
 * in a block). Buffers too small for three slots of a block make one slot of the largest moment: each
 * parameter in one piece, its reads, update and writes in turn.
 */
export function diskPieces(layout: Pick<PersistentLayout, "diskStage" | "gradStage" | "paramStage">): { piece: number; slots: number } {
  if (!layout.diskStage) throw new Error("internal: the disk pipeline's slots of a layout with no disk tier");
  const momentBytes = layout.diskStage[1] - layout.diskStage[0];
  const room = Math.min(
    momentBytes,
    layout.gradStage?.bytes ?? Infinity,
    layout.paramStage ? layout.paramStage.paramBytes - DISK_SLOTS * DISK_BLOCK : Infinity,
  );
  const piece = Math.floor(room / DISK_SLOTS / DISK_BLOCK) * DISK_BLOCK;
  return piece >= DISK_BLOCK ? { piece: piece / 4, slots: DISK_SLOTS } : { piece: momentBytes / 4, slots: 1 };
}

/** Which chunks of model data live in host memory. */
export interface Offloaded {
  chunks: ChunkLayout;
  /** Chunk indices that stay on the device for the whole step. */
  resident: ReadonlySet<number>;
  /** Offloaded chunks whose AdamW moments live in the disk tier rather than host memory. */
  momentsOnDisk?: ReadonlySet<number>;
  /** Offloaded chunks whose gradients' host copies live in the disk tier too (their moments must be there already). */
  gradsOnDisk?: ReadonlySet<number>;
  /** Offloaded chunks whose parameters live in the disk tier too (their moments must be there already). */
  paramsOnDisk?: ReadonlySet<number>;
}

/**
 * Resident model data at the bottom of the arena: parameters (in state_dict order), then first moments,
 * then second moments. Offloaded chunks go to the host region: their parameters chunk by chunk (so each
 * chunk is one contiguous copy), then their moments, then the host copies of their gradients.
 * Under ZeRO the parameters lie chunk by chunk, each chunk padded to its ranks' shards (a zero_gather
 * writes them all), and the moments are this rank's shard of each chunk (opt.m.chunk<i>, opt.v.chunk<i>).
 * Moments of the chunks in `offloaded.momentsOnDisk` go to the disk tier instead, each at a whole block,
 * and the host region ends with the two staging buffers host AdamW reads them into (page-aligned).
 * Parameters of the chunks in `offloaded.paramsOnDisk` go to the disk tier before the moments, each chunk
 * from a whole block and laid out as in host memory (one read brings it in), with two more staging
 * buffers (`paramStage`); gradients of the chunks in `offloaded.gradsOnDisk` after them, each at a whole
 * block, with two more (`gradStage`).
 * At ZeRO 3 only this rank's shard of each chunk's parameters is kept (zero.param.chunk<i>).
 */
export function persistentLayout(g: Graph, withOptimizer: boolean, offloaded?: Offloaded, zero?: ZeroSharding): PersistentLayout {
  // A plan search reads only the sizes of most layouts it makes: where each name lies is recorded, by
  // laying the same data out again, when first asked for.
  const sizes = layOut(g, withOptimizer, offloaded, zero, false);
  let named: PersistentLayout | undefined;
  const recorded = () => (named ??= layOut(g, withOptimizer, offloaded, zero, true));
  return {
    ...sizes,
    get offsets() {
      return recorded().offsets;
    },
    get onHost() {
      return recorded().onHost;
    },
    get chunkRange() {
      return recorded().chunkRange;
    },
    get onDisk() {
      return recorded().onDisk;
    },
    get sharded() {
      return recorded().sharded;
    },
  };
}

/** The layout; without `record`, its sizes alone, its maps and sets left empty. */
function layOut(
  g: Graph,
  withOptimizer: boolean,
  offloaded: Offloaded | undefined,
  zero: ZeroSharding | undefined,
  record: boolean,
): PersistentLayout {
  const offsets = new Map<string, number>();
  const onHost = new Set<string>();
  const isHost = (param: string) => offloaded !== undefined && !offloaded.resident.has(offloaded.chunks.chunkOf.get(param)!);
  const isDisk = (param: string) => offloaded?.momentsOnDisk?.has(offloaded.chunks.chunkOf.get(param)!) === true;
  const onDisk = new Set<string>();
  let disk = 0;
  let largestOnDisk = 0;
  let largestChunkOnDisk = 0;
  let widestParamOnDisk = 0;
  let largestGradOnDisk = 0;
  const gradOnDisk = (name: string) => {
    if (offloaded?.gradsOnDisk === undefined) return false;
    const param = name.startsWith("grad.") ? name.slice("grad.".length) : undefined;
    const chunk = param === undefined ? undefined : offloaded?.chunks.chunkOf.get(param);
    return chunk !== undefined && offloaded?.gradsOnDisk?.has(chunk) === true;
  };
  const elements = new Map(g.params.map((p) => [p.name, numel(p.shape)]));
  let device = 0;
  let host = 0;
  const put = (name: string, count: number, toHost: boolean) => {
    if (toHost) {
      if (record) {
        onHost.add(name);
        offsets.set(name, host);
      }
      host += alignUp(count * 4);
    } else {
      if (record) offsets.set(name, device);
      device += alignUp(count * 4);
    }
  };
  const sharded = new Set<string>();
  const chunkRange = new Map<number, [number, number]>();
  // ZeRO 3 with offload: a chunk's model data in host memory is this rank's shard of it.
  const shardOnHost = (chunk: number) => offloaded !== undefined && !offloaded.resident.has(chunk);
  if (zero?.stage === 3) {
    for (const chunk of zero.chunks.chunks) {
      if (record) for (const name of chunk.params) sharded.add(name);
      const start = host;
      put(paramShardName(chunk.index), shardElements(chunk, zero.ranks), shardOnHost(chunk.index));
      if (record && shardOnHost(chunk.index)) chunkRange.set(chunk.index, [start, host]);
    }
  } else if (zero) {
    for (const chunk of zero.chunks.chunks) {
      if (record) for (const name of chunk.params) offsets.set(name, device + chunk.offsets.get(name)!);
      device += 4 * zero.ranks * shardElements(chunk, zero.ranks);
    }
  } else for (const p of g.params) if (!isHost(p.name)) put(p.name, numel(p.shape), false);
  const paramBytes = device;
  for (const chunk of zero?.stage === 3 ? [] : (offloaded?.chunks.chunks ?? [])) {
    if (offloaded!.resident.has(chunk.index)) continue;
    if (offloaded!.paramsOnDisk?.has(chunk.index)) {
      if (!offloaded!.momentsOnDisk?.has(chunk.index))
        throw new Error(`internal: chunk ${chunk.index}'s parameters go to disk before its moments`);
      for (const name of chunk.params) {
        if (record) {
          onDisk.add(name);
          offsets.set(name, disk + chunk.offsets.get(name)!);
        }
        widestParamOnDisk = Math.max(widestParamOnDisk, diskSpan(chunk.offsets.get(name)!, elements.get(name)! * 4));
      }
      disk += diskBlocks(chunk.bytes);
      largestChunkOnDisk = Math.max(largestChunkOnDisk, diskBlocks(chunk.bytes));
      continue;
    }
    const start = host;
    for (const name of chunk.params) put(name, elements.get(name)!, true);
    if (record) chunkRange.set(chunk.index, [start, host]);
  }
  if (withOptimizer && zero)
    for (const moment of ["m", "v"])
      for (const chunk of zero.chunks.chunks)
        put(`opt.${moment}.chunk${chunk.index}`, shardElements(chunk, zero.ranks), zero.stage === 3 && shardOnHost(chunk.index));
  else if (withOptimizer)
    for (const moment of ["m", "v"])
      for (const p of trainedParams(g)) {
        const name = record ? `opt.${moment}.${p.name}` : "";
        if (!isDisk(p.name)) {
          put(name, numel(p.shape), isHost(p.name));
          continue;
        }
        if (record) {
          onDisk.add(name);
          offsets.set(name, disk);
        }
        disk += diskBlocks(numel(p.shape) * 4);
        largestOnDisk = Math.max(largestOnDisk, diskBlocks(numel(p.shape) * 4));
      }
  const optStateBytes = device - paramBytes;
  for (const n of g.nodes) {
    if (n.op !== "copy_d2h") continue;
    const bytes = 4 * numel(n.outputs[0].shape);
    if (!gradOnDisk(n.attrs.name)) {
      put(n.attrs.name, bytes / 4, true);
      continue;
    }
    if (record) {
      onDisk.add(n.attrs.name);
      offsets.set(n.attrs.name, disk);
    }
    disk += diskBlocks(bytes);
    largestGradOnDisk = Math.max(largestGradOnDisk, diskBlocks(bytes));
  }
  let diskStage: [number, number] | undefined;
  if (disk > 0) {
    host = diskBlocks(host);
    diskStage = [host, host + largestOnDisk];
    host += 2 * largestOnDisk;
  }
  let paramStage: PersistentLayout["paramStage"];
  if (largestChunkOnDisk > 0) {
    paramStage = { load: host, loadBytes: largestChunkOnDisk, param: host + largestChunkOnDisk, paramBytes: widestParamOnDisk };
    host += largestChunkOnDisk + widestParamOnDisk;
  }
  let gradStage: PersistentLayout["gradStage"];
  if (largestGradOnDisk > 0) {
    gradStage = { copy: host, update: host + largestGradOnDisk, bytes: largestGradOnDisk };
    host += 2 * largestGradOnDisk;
  }
  return {
    offsets,
    onHost,
    paramBytes,
    optStateBytes,
    bytes: device,
    hostBytes: host,
    chunkRange,
    onDisk,
    diskBytes: disk,
    ...(diskStage && { diskStage }),
    ...(paramStage && { paramStage }),
    ...(gradStage && { gradStage }),
    sharded,
  };
}

/**
 * The bytes persistentLayout puts at the bottom of the arena (parameters and both AdamW moments of the
 * resident chunks), from the parameters alone: a schedule search rules out schedules with it unplanned.
 */
export function residentModelBytes(params: readonly ParamInfo[], offloaded: Offloaded, zero?: ZeroSharding): number {
  let bytes = 0;
  if (zero?.stage === 3) {
    for (const c of offloaded.chunks.chunks) if (offloaded.resident.has(c.index)) bytes += 3 * 4 * shardElements(c, zero.ranks);
    return bytes;
  }
  for (const p of params) if (offloaded.resident.has(offloaded.chunks.chunkOf.get(p.name)!)) bytes += 3 * alignUp(numel(p.shape) * 4);
  return bytes;
}

export interface Breakdown {
  parameters: number;
  optimizer_states: number;
  gradients: number;
  activations: number;
  workspace: number;
  inputs: number;
  /** Bytes lost to gaps between placed buffers at the peak. */
  fragmentation: number;
}

export interface MemoryPlan {
  /** Value id -> byte offset of its storage: in the arena, or in host memory for `hostValues`. */
  valueOffset: Map<number, number>;
  /** Values stored in host memory (offloaded model data). */
  hostValues: Set<number>;
  /** Values stored in the disk tier (moments); their offset is in its file, and host AdamW stages them. */
  diskValues: Set<number>;
  /** The persistent layout's staging buffers for moments on disk (host offsets), when there are any. */
  diskStage?: [number, number];
  /** The persistent layout's staging buffers for parameters and gradients on disk, when there are any. */
  paramStage?: PersistentLayout["paramStage"];
  gradStage?: PersistentLayout["gradStage"];
  /** Node id -> the disk tier's bytes it reads and writes, for every node that moves any (see diskTraffic). */
  diskIo: Map<number, DiskIo>;
  /** Node id -> [absolute offset, bytes] of its workspace. */
  workspace: Map<number, [number, number]>;
  buffers: (LiveBuffer & { offset: number })[];
  /** Predicted arena high-water mark for one run of the program. */
  peak: number;
  /** Size of the dynamic region above the persistent one (aligned). */
  dynamicBytes: number;
  breakdown: Breakdown;
  /** Node position at which the most temporary bytes are live. */
  peakPosition: number;
}

export function planMemory(g: Graph, persistent: PersistentLayout, threads: number): MemoryPlan {
  return planMemoryWithin(g, persistent, threads, Infinity)!;
}

/**
 * The memory plan, or undefined when its temporaries need more than `limit` bytes above the persistent
 * region: a plan search judges most plans by whether they fit, and one that cannot is given up as soon
 * as that is certain, before placement when the bytes live at one moment already exceed the limit (no
 * placement can peak lower), else as soon as placement's peak does.
 */
export function planMemoryWithin(g: Graph, persistent: PersistentLayout, threads: number, limit: number): MemoryPlan | undefined {
  const live = liveness(g, threads);
  if (limit < Infinity && mostLiveBytes(live.buffers, g.nodes.length) > limit) return undefined;
  const placement = placeBuffersWithin(live.buffers, limit);
  if (placement === undefined) return undefined;
  // Temporaries go above the resident model data.
  const base = persistent.bytes;
  // Each buffer object is this plan's own (liveness made it for this call), so it takes its offset in
  // place, without a new array or an object per buffer to copy it from.
  const buffers = live.buffers as (LiveBuffer & { offset: number })[];
  for (const b of buffers) b.offset = base + placement.offsets.get(b.key)!;
  // A plan search judges most plans by their peak alone and generates code for one: what else a plan
  // says (offsets by value, workspaces by node, where model data lives, the peak's breakdown) is made
  // when first asked for.
  let valueOffset: Map<number, number> | undefined;
  let workspace: Map<number, [number, number]> | undefined;
  let hostValues: Set<number> | undefined;
  let diskValues: Set<number> | undefined;
  let diskIo: Map<number, DiskIo> | undefined;
  let busiest: { breakdown: Breakdown; position: number } | undefined;
  const atBusiest = () => (busiest ??= breakdownAtBusiest(live.buffers, g.nodes.length, persistent, placement.peak));
  return {
    get valueOffset() {
      return (valueOffset ??= valueOffsets(g, live, placement, persistent));
    },
    get hostValues() {
      return (hostValues ??= valuesStoredIn(persistent.onHost, g, live));
    },
    get diskValues() {
      return (diskValues ??= valuesStoredIn(persistent.onDisk, g, live));
    },
    ...(persistent.diskStage && { diskStage: persistent.diskStage }),
    ...(persistent.paramStage && { paramStage: persistent.paramStage }),
    ...(persistent.gradStage && { gradStage: persistent.gradStage }),
    get diskIo() {
      return (diskIo ??= persistent.diskBytes > 0 ? diskTraffic(g, persistent, live.persistentName) : new Map());
    },
    get workspace() {
      return (workspace ??= new Map(buffers.filter((b) => b.kind === "workspace").map((b) => [b.node.id, [b.offset, b.bytes]])));
    },
    buffers,
    peak: base + placement.peak,
    dynamicBytes: alignUp(placement.peak),
    get breakdown() {
      return atBusiest().breakdown;
    },
    get peakPosition() {
      return atBusiest().position;
    },
  };
}

/** The values whose storage is model data the persistent layout puts in `names` (the host region, or the disk tier). */
function valuesStoredIn(names: ReadonlySet<string>, g: Graph, live: Liveness): Set<number> {
  const values = new Set<number>();
  if (names.size === 0) return values;
  for (const n of g.nodes)
    for (const { id } of n.outputs) {
      const name = live.persistentName[id];
      if (name !== undefined && names.has(name)) values.add(id);
    }
  return values;
}

/** The memory by kind at the moment the most temporary bytes are live, and that moment. */
function breakdownAtBusiest(buffers: readonly LiveBuffer[], length: number, persistent: PersistentLayout, placedPeak: number) {
  const { position, byKind } = busiestMoment(buffers, length);
  const liveTotal = Object.values(byKind).reduce((s, x) => s + x, 0);
  const breakdown: Breakdown = {
    parameters: persistent.paramBytes + byKind.parameter,
    optimizer_states: persistent.optStateBytes,
    gradients: byKind.gradient,
    activations: byKind.activation,
    workspace: byKind.workspace,
    inputs: byKind.input,
    fragmentation: placedPeak - liveTotal,
  };
  return { breakdown, position };
}

/** Bytes one node reads from and writes to the disk tier. */
export interface DiskIo {
  read: number;
  write: number;
}

/**
 * What each node moves to and from the disk tier, in whole blocks as the runtime moves them: a chunk's
 * copy to the device reads the chunk, when its parameters are on disk; a gradient's copy to the host
 * writes it when it is on disk (the gradient norm reads nothing back: the sums of squares are taken on
 * the way out); host AdamW reads and writes back both moments when they are on disk, the blocks holding
 * each piece of the parameter when it is (diskPieces: a block two pieces share moves with each), and
 * reads the gradient when it is. The runtime's per-step counters must come to the training program's sum.
 */
/**
 * The disk bytes host AdamW moves each way for a parameter on disk of `elements` floats from byte `offset`:
 * the pipeline moves it `piece` elements at a time, each piece as the whole blocks holding it, so a block
 * two pieces share (the parameter need not start on a block) is moved with each.
 */
export function pieceByPieceBytes(offset: number, elements: number, piece: number): number {
  let bytes = 0;
  for (let first = 0; first < elements; first += piece) bytes += diskSpan(offset + 4 * first, 4 * Math.min(piece, elements - first));
  return bytes;
}

function diskTraffic(g: Graph, persistent: PersistentLayout, persistentName: readonly (string | undefined)[]): Map<number, DiskIo> {
  const io = new Map<number, DiskIo>();
  const diskName = (v: Value) => {
    const name = persistentName[v.id];
    return name !== undefined && persistent.onDisk.has(name) ? name : undefined;
  };
  for (const n of g.nodes) {
    if (n.op === "chunk_h2d" && diskName(n.inputs[0]) !== undefined) {
      io.set(n.id, { read: diskBlocks(4 * numel(n.outputs[0].shape)), write: 0 });
    } else if (n.op === "copy_d2h" && diskName(n.outputs[0]) !== undefined) {
      io.set(n.id, { read: 0, write: diskBlocks(4 * numel(n.outputs[0].shape)) });
    } else if (n.op === "adamw" && diskName(n.inputs[2]) !== undefined) {
      const elements = numel(n.inputs[0].shape);
      let bytes = 2 * diskBlocks(4 * elements);
      const param = diskName(n.inputs[0]);
      if (param !== undefined) {
        bytes += pieceByPieceBytes(persistent.offsets.get(param)!, elements, diskPieces(persistent).piece);
      }
      const grad = diskName(n.inputs[1]) !== undefined ? diskBlocks(4 * elements) : 0;
      io.set(n.id, { read: bytes + grad, write: bytes });
    }
  }
  return io;
}

/** Byte offset of each value's data: in the persistent layout (arena or host) for model data, else in the arena. */
function valueOffsets(g: Graph, live: Liveness, placement: Placement, persistent: PersistentLayout): Map<number, number> {
  const base = persistent.bytes;
  const offsets = new Map<number, number>();
  for (const n of g.nodes)
    for (const { id } of n.outputs) {
      const name = live.persistentName[id];
      if (name !== undefined && persistent.sharded.has(name)) continue; // no storage of its own: nothing reads it
      offsets.set(
        id,
        (name !== undefined ? persistent.offsets.get(name)! : base + placement.offsets.get(live.storageOf[id])!) + live.viewOffset[id],
      );
    }
  return offsets;
}

const BUFFER_KINDS: readonly BufferKind[] = ["activation", "gradient", "parameter", "workspace", "input"];

/** Bytes of temporaries live at each node position, by kind (running sums over interval ends). */
export function liveBytesByKind(buffers: readonly LiveBuffer[], length: number): Record<BufferKind, Float64Array> {
  const series = Object.fromEntries(BUFFER_KINDS.map((k) => [k, new Float64Array(length + 1)])) as Record<BufferKind, Float64Array>;
  for (const b of buffers) {
    series[b.kind][b.start] += b.bytes;
    series[b.kind][b.end + 1] -= b.bytes;
  }
  for (const s of Object.values(series)) for (let i = 1; i <= length; i++) s[i] += s[i - 1];
  return series;
}

/** The most bytes of temporaries live at one node position: a floor under any placement's peak. */
function mostLiveBytes(buffers: readonly LiveBuffer[], length: number): number {
  const change = new Float64Array(length + 1);
  for (const b of buffers) {
    change[b.start] += b.bytes;
    change[b.end + 1] -= b.bytes;
  }
  let [live, most] = [0, 0];
  for (let i = 0; i < length; i++) {
    live += change[i];
    if (live > most) most = live;
  }
  return most;
}

/** The node position with the most live temporary bytes, and those bytes by kind. */
function busiestMoment(buffers: readonly LiveBuffer[], length: number) {
  const series = liveBytesByKind(buffers, length);
  let best = 0;
  let bestBytes = -1;
  for (let i = 0; i < length; i++) {
    const total = BUFFER_KINDS.reduce((s, k) => s + series[k][i], 0);
    if (total > bestBytes) [best, bestBytes] = [i, total];
  }
  const byKind = Object.fromEntries(BUFFER_KINDS.map((k) => [k, series[k][best]])) as Record<BufferKind, number>;
  return { position: best, byKind };
}
