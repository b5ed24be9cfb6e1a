// Liveness over a scheduled graph: which storage each value lives in and the interval of node positions
// during which that storage must hold data. Views and in-place updates (ops.ts `aliases`) always share
// their source's storage; an op that may overwrite an input (ops.ts `reuses`) takes that input's
// storage when the input dies at that very node and has the same size, as XLA's buffer reuse does.
import { opDef, workspaceBytes } from "../ops.ts";
import { type Graph, type Node, valueBytes } from "../types.ts";

export type BufferKind = "activation" | "gradient" | "parameter" | "workspace" | "input";

/** Storage that the arena planner places: one per root value, plus one per node workspace. */
export interface LiveBuffer {
  /** Root value id, or -1 - node id for a workspace. */
  readonly key: number;
  readonly bytes: number;
  /** First and last node positions (inclusive) at which the storage holds live data. */
  readonly start: number;
  end: number;
  kind: BufferKind;
  /** The node that first writes it (the producer, or the node that uses the workspace). */
  readonly node: Node;
}

/** Ops whose outputs are persistent model data (named by attribute `name`), never arena temporaries. */
const PERSISTENT_ROOTS = new Set(["param", "opt_state", "copy_d2h"]);

export interface Liveness {
  buffers: LiveBuffer[];
  /** Value id -> key of the storage it lives in (root value id). */
  storageOf: Map<number, number>;
  /** Values whose storage is persistent model data (parameters, moments) -> the root's name. */
  persistentName: Map<number, string>;
  /** Views that start inside their storage rather than at its beginning (chunk_view) -> byte offset. */
  viewOffset: Map<number, number>;
}

export function liveness(g: Graph, threads: number): Liveness {
  const last = g.nodes.length - 1;
  const lastUse = lastUses(g);
  const storageOf = new Map<number, number>();
  const persistentName = new Map<number, string>();
  const viewOffset = new Map<number, number>();
  const gradIds = new Set(Object.values(g.grads).map((v) => v.id));
  const buffers = new Map<number, LiveBuffer>();
  /** Storages the runtime reads or writes from outside (inputs, results): never reused. */
  const pinned = new Set<number>();
  const workspaces: LiveBuffer[] = [];

  g.nodes.forEach((n, i) => {
    const def = opDef(n.op);
    n.outputs.forEach((v, k) => {
      const viewOf = def.aliases?.[k];
      if (viewOf !== undefined) {
        const src = n.inputs[viewOf].id;
        storageOf.set(v.id, storageOf.get(src)!);
        const offset = (viewOffset.get(src) ?? 0) + (n.op === "chunk_view" ? (n.attrs.offset as number) : 0);
        if (offset !== 0) viewOffset.set(v.id, offset);
        if (persistentName.has(src)) persistentName.set(v.id, persistentName.get(src)!);
        return;
      }
      if (PERSISTENT_ROOTS.has(n.op)) {
        storageOf.set(v.id, v.id);
        persistentName.set(v.id, n.attrs.name as string);
        return;
      }
      const reuses = typeof def.reuses === "function" ? def.reuses(n.inputs, n.attrs) : def.reuses;
      const reuse = reuses?.[k];
      const candidate = reuse === undefined ? undefined : buffers.get(storageOf.get(n.inputs[reuse].id)!);
      if (candidate && candidate.end === i && !pinned.has(candidate.key) && candidate.bytes === valueBytes(v)) {
        storageOf.set(v.id, candidate.key);
        candidate.end = Math.max(candidate.end, lastUse.get(v.id) ?? i);
        if (gradIds.has(v.id)) candidate.kind = "gradient";
        return;
      }
      storageOf.set(v.id, v.id);
      const isInput = n.op === "input";
      // Program inputs are written by the runtime before the first node, so they live throughout.
      const kind: BufferKind =
        isInput ? "input" : gradIds.has(v.id) ? "gradient" : isParameterCopy(n) ? "parameter" : "activation";
      buffers.set(v.id, { key: v.id, bytes: valueBytes(v), start: isInput ? 0 : i, end: isInput ? last : i, kind, node: n });
      if (isInput) pinned.add(v.id);
    });
    // A view extends the life of the storage it looks into.
    for (const v of n.outputs) {
      const b = buffers.get(storageOf.get(v.id)!);
      if (b) b.end = Math.max(b.end, lastUse.get(v.id) ?? i);
    }
    const ws = workspaceBytes(n.op, n.inputs, n.attrs, threads);
    if (ws > 0) workspaces.push({ key: -1 - n.id, bytes: ws, start: i, end: i, kind: "workspace", node: n });
  });

  // Program results are read by the runtime after the last node.
  for (const v of Object.values(g.named)) {
    const b = buffers.get(storageOf.get(v.id)!);
    if (b) b.end = last;
  }
  return { buffers: [...buffers.values(), ...workspaces], storageOf, persistentName, viewOffset };
}

/** A chunk of model data copied to the device (a chunk_h2d of a saved activation holds an activation). */
function isParameterCopy(n: Node): boolean {
  return n.op === "chunk_h2d" && n.attrs.activation === undefined;
}

/** Position of the last node that reads each value; program results count as read at the end. */
function lastUses(g: Graph): Map<number, number> {
  const lastUse = new Map<number, number>();
  g.nodes.forEach((n, i) => n.inputs.forEach((v) => lastUse.set(v.id, i)));
  for (const v of Object.values(g.named)) lastUse.set(v.id, g.nodes.length - 1);
  return lastUse;
}
