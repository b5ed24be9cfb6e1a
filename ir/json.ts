// The JSON form of a graph (for tools and plan files): values by id, attributes as they are, and a
// node's placement and copy payload where the planner set them.
import type { Graph } from "./types.ts";

export function graphToJson(g: Graph): object {
  return {
    params: g.params.map((p) => ({ name: p.name, shape: p.shape, init: p.init, decay: p.decay, value: p.value.id })),
    named: Object.fromEntries(Object.entries(g.named).map(([k, v]) => [k, v.id])),
    grads: Object.fromEntries(Object.entries(g.grads).map(([k, v]) => [k, v.id])),
    nodes: g.nodes.map((n) => ({
      id: n.id,
      op: n.op,
      phase: n.phase,
      inputs: n.inputs.map((v) => v.id),
      outputs: n.outputs.map((v) => ({ id: v.id, dtype: v.dtype, shape: v.shape })),
      attrs: n.attrs,
      ...(n.placement !== "device" && { placement: n.placement }),
      ...(n.payload && { payload: n.payload }),
      loc: n.loc,
    })),
  };
}
