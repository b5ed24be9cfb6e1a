// Liveness over a scheduled graph: which storage each value lives in and the interval of node positions
// during which that storage must hold data. Views and in-place updates (ops.ts `aliases`) always share
// their source's storage; an op that may overwrite an input (ops.ts `reuses`) takes that input's
// storage when the input dies at that very node and has the same size, as XLA's buffer reuse does.
import { opDef } from "../ops.ts";
import { type Graph, type Node, valueBytes, valueIdBound } from "../types.ts";

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
const PERSISTENT_ROOTS = new Set(["param", "opt_state", "copy_d2h", "zero_param_shard"]);

/** The name of the persistent buffer a root node's output is: a parameter, an optimizer state, or a host copy. */
function persistentNameOf(n: Node): string {
  if (n.op === "param" || n.op === "opt_state" || n.op === "copy_d2h" || n.op === "zero_param_shard") return n.attrs.name;
  throw new Error(`internal: ${n.op} makes no persistent buffer`);
}

export interface Liveness {
  buffers: LiveBuffer[];
  /** Value id -> key of the storage it lives in (root value id); -1 for an id no value of the graph has. */
  storageOf: Int32Array;
  /** Values whose storage is persistent model data (parameters, moments) -> the root's name. */
  persistentName: (string | undefined)[];
  /** Value id -> byte offset at which it starts inside its storage (chunk_view); 0 for most. */
  viewOffset: Float64Array;
}

// Value ids are dense within a graph (ir/builder.ts), so per-value facts live in arrays indexed by id:
// a plan search runs liveness on thousands of graphs of tens of thousands of values, and Map lookups
// dominated its time.

export function liveness(g: Graph, threads: number): Liveness {
  const last = g.nodes.length - 1;
  const size = valueIdBound(g);
  const lastUse = lastUses(g, size);
  const storageOf = new Int32Array(size).fill(-1);
  const persistentName = new Array<string | undefined>(size);
  const viewOffset = new Float64Array(size);
  const isGrad = new Uint8Array(size);
  for (const v of Object.values(g.grads)) isGrad[v.id] = 1;
  const bufferOf = new Array<LiveBuffer | undefined>(size); // root value id -> its storage
  const buffers: LiveBuffer[] = [];
  /** Storages the runtime reads or writes from outside (inputs, results): never reused. */
  const pinned = new Uint8Array(size);
  const workspaces: LiveBuffer[] = [];
  const lastUseOr = (id: number, i: number) => (lastUse[id] >= 0 ? lastUse[id] : i);

  // Plain loops, no closure per node or value: a plan search runs this on every graph it probes.
  for (let i = 0; i <= last; i++) {
    const n = g.nodes[i];
    const def = opDef(n.op);
    const persistentRoot = PERSISTENT_ROOTS.has(n.op);
    let reuses: Readonly<Record<number, number>> | undefined;
    for (let k = 0; k < n.outputs.length; k++) {
      const v = n.outputs[k];
      const viewOf = def.aliases?.[k];
      if (viewOf !== undefined) {
        const src = n.inputs[viewOf].id;
        storageOf[v.id] = storageOf[src];
        viewOffset[v.id] = viewOffset[src] + (n.op === "chunk_view" ? n.attrs.offset : 0);
        persistentName[v.id] = persistentName[src];
        continue;
      }
      if (persistentRoot) {
        storageOf[v.id] = v.id;
        persistentName[v.id] = persistentNameOf(n);
        continue;
      }
      reuses ??= typeof def.reuses === "function" ? def.reuses(n.inputs, n.attrs) : def.reuses;
      const reuse = reuses?.[k];
      const candidate = reuse === undefined ? undefined : bufferOf[storageOf[n.inputs[reuse].id]];
      const bytes = valueBytes(v);
      if (candidate && candidate.end === i && !pinned[candidate.key] && candidate.bytes === bytes) {
        storageOf[v.id] = candidate.key;
        candidate.end = Math.max(candidate.end, lastUseOr(v.id, i));
        if (isGrad[v.id]) candidate.kind = "gradient";
        continue;
      }
      storageOf[v.id] = v.id;
      const isInput = n.op === "input";
      // Program inputs are written by the runtime before the first node, so they live throughout.
      const kind: BufferKind = isInput ? "input" : isGrad[v.id] ? "gradient" : isParameterCopy(n) ? "parameter" : "activation";
      const buffer = { key: v.id, bytes, start: isInput ? 0 : i, end: isInput ? last : i, kind, node: n };
      bufferOf[v.id] = buffer;
      buffers.push(buffer);
      if (isInput) pinned[v.id] = 1;
    }
    // A view extends the life of the storage it looks into.
    for (let k = 0; k < n.outputs.length; k++) {
      const id = n.outputs[k].id;
      const b = bufferOf[storageOf[id]];
      if (b) b.end = Math.max(b.end, lastUseOr(id, i));
    }
    const ws = def.workspace?.(n.inputs, n.attrs, threads) ?? 0;
    if (ws > 0) workspaces.push({ key: -1 - n.id, bytes: ws, start: i, end: i, kind: "workspace", node: n });
  }

  // Program results are read by the runtime after the last node.
  for (const v of Object.values(g.named)) {
    const b = bufferOf[storageOf[v.id]];
    if (b) b.end = last;
  }
  return { buffers: [...buffers, ...workspaces], storageOf, persistentName, viewOffset };
}

/** A chunk of model data copied to the device (a chunk_h2d of a saved activation holds an activation). */
function isParameterCopy(n: Node): boolean {
  return (n.op === "chunk_h2d" && n.payload === "model") || n.op === "zero_all_gather";
}

/** Position of the last node that reads each value (-1: none); program results count as read at the end. */
function lastUses(g: Graph, size: number): Int32Array {
  const lastUse = new Int32Array(size).fill(-1);
  for (let i = 0; i < g.nodes.length; i++) {
    const inputs = g.nodes[i].inputs;
    for (let k = 0; k < inputs.length; k++) lastUse[inputs[k].id] = i;
  }
  for (const v of Object.values(g.named)) lastUse[v.id] = g.nodes.length - 1;
  return lastUse;
}
