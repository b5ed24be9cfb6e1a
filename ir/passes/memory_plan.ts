// The memory plan of a program: persistent model data (parameters, then AdamW moments) at fixed offsets
// at the bottom of the arena, and every temporary (activations, gradients, workspaces, inputs) at a
// static offset above it, from liveness and best-fit placement. Predicts the arena high-water mark and
// breaks it down by kind at the moment the most bytes are live.
import { type Graph, numel } from "../types.ts";
import { alignUp, placeBuffers } from "./arena_plan.ts";
import { type BufferKind, type LiveBuffer, liveness } from "./liveness.ts";

export interface PersistentLayout {
  /** Parameter, moment (opt.m.<name>, opt.v.<name>) or host gradient (grad.<name>) name -> byte offset. */
  offsets: Map<string, number>;
  paramBytes: number;
  optStateBytes: number;
  /** Host copies of the gradients (only when model data is offloaded). */
  gradBytes: number;
  /** Size of the persistent region (aligned). */
  bytes: number;
  /** The region is host memory (model data offloaded), not the bottom of the device arena. */
  onHost: boolean;
}

/**
 * Parameters first (in state_dict order), then first moments, then second moments, then (offloaded)
 * the host gradients.
 */
export function persistentLayout(g: Graph, withOptimizer: boolean, onHost = false): PersistentLayout {
  const offsets = new Map<string, number>();
  let cursor = 0;
  const put = (name: string, elements: number) => {
    offsets.set(name, cursor);
    cursor += alignUp(elements * 4);
  };
  for (const p of g.params) put(p.name, numel(p.shape));
  const paramBytes = cursor;
  if (withOptimizer) {
    for (const p of g.params) put(`opt.m.${p.name}`, numel(p.shape));
    for (const p of g.params) put(`opt.v.${p.name}`, numel(p.shape));
  }
  const optEnd = cursor;
  for (const n of g.nodes) if (n.op === "copy_d2h") put(n.attrs.name as string, numel(n.outputs[0].shape));
  return { offsets, paramBytes, optStateBytes: optEnd - paramBytes, gradBytes: cursor - optEnd, bytes: cursor, onHost };
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
  const live = liveness(g, threads);
  const placement = placeBuffers(live.buffers);
  // Temporaries go above the persistent region, or from the bottom when that region is on the host.
  const base = persistent.onHost ? 0 : persistent.bytes;
  const valueOffset = new Map<number, number>();
  const hostValues = new Set<number>();
  for (const [valueId, root] of live.storageOf) {
    const name = live.persistentName.get(valueId);
    if (name !== undefined) {
      valueOffset.set(valueId, persistent.offsets.get(name)!);
      if (persistent.onHost) hostValues.add(valueId);
    } else valueOffset.set(valueId, base + placement.offsets.get(root)!);
  }
  const workspace = new Map<number, [number, number]>();
  const buffers = live.buffers.map((b) => ({ ...b, offset: base + placement.offsets.get(b.key)! }));
  for (const b of buffers) if (b.kind === "workspace") workspace.set(b.node.id, [b.offset, b.bytes]);

  const { position, byKind } = busiestMoment(live.buffers, g.nodes.length);
  const liveTotal = Object.values(byKind).reduce((s, x) => s + x, 0);
  const onDevice = persistent.onHost ? 0 : 1;
  const breakdown: Breakdown = {
    parameters: onDevice * persistent.paramBytes + byKind.parameter,
    optimizer_states: onDevice * persistent.optStateBytes,
    gradients: byKind.gradient,
    activations: byKind.activation,
    workspace: byKind.workspace,
    inputs: byKind.input,
    fragmentation: placement.peak - liveTotal,
  };
  return {
    valueOffset,
    hostValues,
    workspace,
    buffers,
    peak: base + placement.peak,
    dynamicBytes: alignUp(placement.peak),
    breakdown,
    peakPosition: position,
  };
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
