// Checks a graph's invariants; tests run it after every pass. A failure is a compiler bug, so it throws
// a plain Error naming the node.
import { opDef } from "./ops.ts";
import { formatNode } from "./printer.ts";
import { type Graph, shapeEq } from "./types.ts";

export function verifyGraph(g: Graph): void {
  const defined = new Set<number>();
  const nodeIds = new Set<number>();
  for (const n of g.nodes) {
    const where = () => formatNode(n);
    if (nodeIds.has(n.id)) throw new Error(`verify: duplicate node id ${n.id}: ${where()}`);
    nodeIds.add(n.id);
    for (const v of n.inputs) if (!defined.has(v.id)) throw new Error(`verify: %${v.id} used before it is defined: ${where()}`);
    const types = opDef(n.op).infer(n.inputs, n.attrs);
    if (types.length !== n.outputs.length) throw new Error(`verify: wrong output count: ${where()}`);
    n.outputs.forEach((v, i) => {
      if (defined.has(v.id)) throw new Error(`verify: %${v.id} defined twice: ${where()}`);
      if (v.producer !== n || v.index !== i) throw new Error(`verify: %${v.id} has a wrong producer: ${where()}`);
      if (!shapeEq(v.shape, types[i].shape) || v.dtype !== types[i].dtype)
        throw new Error(
          `verify: %${v.id} has type ${v.dtype}[${v.shape}] but the op gives ${types[i].dtype}[${types[i].shape}]: ${where()}`,
        );
      defined.add(v.id);
    });
  }
  for (const p of g.params)
    if (!defined.has(p.value.id) || p.value.producer.op !== "param") throw new Error(`verify: parameter ${p.name} has no param node`);
  for (const [k, v] of [...Object.entries(g.named), ...Object.entries(g.grads)])
    if (!defined.has(v.id)) throw new Error(`verify: result ${k} (%${v.id}) is not defined in the graph`);
}
