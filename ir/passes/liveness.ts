// Liveness over a scheduled graph: which storage each value lives in (views and in-place updates share
// their source's storage) and the interval of node positions during which that storage must hold data.
import { opDef, workspaceBytes } from "../ops.ts";
import { type Graph, type Node, valueBytes } from "../types.ts";

export type BufferKind = "activation" | "gradient" | "workspace" | "input";

/** Storage that the arena planner places: one per root value, plus one per node workspace. */
export interface LiveBuffer {
  /** Root value id, or -1 - node id for a workspace. */
  readonly key: number;
  readonly bytes: number;
  /** First and last node positions (inclusive) at which the storage holds live data. */
  readonly start: number;
  end: number;
  readonly kind: BufferKind;
  /** The node that writes it (the producer, or the node that uses the workspace). */
  readonly node: Node;
}

/** Ops whose outputs are persistent model data, never arena temporaries. */
const PERSISTENT_ROOTS = new Set(["param", "opt_state"]);

export interface Liveness {
  buffers: LiveBuffer[];
  /** Value id -> key of the storage it lives in (root value id). */
  storageOf: Map<number, number>;
  /** Values whose storage is persistent model data (parameters, moments) -> the root's name. */
  persistentName: Map<number, string>;
}

export function liveness(g: Graph, threads: number): Liveness {
  const storageOf = new Map<number, number>();
  const persistentName = new Map<number, string>();
  const position = new Map<number, number>();
  g.nodes.forEach((n, i) => position.set(n.id, i));
  const gradIds = new Set(Object.values(g.grads).map((v) => v.id));
  const buffers = new Map<number, LiveBuffer>();
  const workspaces: LiveBuffer[] = [];
  const last = g.nodes.length - 1;

  g.nodes.forEach((n, i) => {
    const aliases = opDef(n.op).aliases ?? {};
    n.outputs.forEach((v, k) => {
      const src = aliases[k];
      if (src !== undefined) {
        const root = storageOf.get(n.inputs[src].id)!;
        storageOf.set(v.id, root);
        if (persistentName.has(n.inputs[src].id)) persistentName.set(v.id, persistentName.get(n.inputs[src].id)!);
        return;
      }
      storageOf.set(v.id, v.id);
      if (PERSISTENT_ROOTS.has(n.op)) {
        persistentName.set(v.id, n.attrs.name as string);
        return;
      }
      const kind: BufferKind = n.op === "input" ? "input" : gradIds.has(v.id) ? "gradient" : "activation";
      // Program inputs are written by the runtime before the first node, so they live throughout.
      const start = n.op === "input" ? 0 : i;
      buffers.set(v.id, { key: v.id, bytes: valueBytes(v), start, end: n.op === "input" ? last : i, kind, node: n });
    });
    for (const v of n.inputs) {
      const b = buffers.get(storageOf.get(v.id)!);
      if (b && b.end < i) b.end = i;
    }
    const ws = workspaceBytes(n.op, n.inputs, n.attrs, threads);
    if (ws > 0) workspaces.push({ key: -1 - n.id, bytes: ws, start: i, end: i, kind: "workspace", node: n });
  });

  // Program results are read by the runtime after the last node.
  for (const v of Object.values(g.named)) {
    const b = buffers.get(storageOf.get(v.id)!);
    if (b) b.end = last;
  }
  return { buffers: [...buffers.values(), ...workspaces], storageOf, persistentName };
}
