// Model data in host memory: parameters, AdamW moments and a host copy of each gradient live on the
// host, and the device holds only what the step is computing. Before the first node of a phase that
// reads a parameter, a copy_h2d brings it to the device, and the phase's later uses share that copy;
// the planner frees it after its last use, like any temporary. Each final gradient goes back with a
// copy_d2h as soon as it is complete, and AdamW (and the gradient norm) run on the host copies.
// Copies are exact, so the step computes bitwise what the all-resident plan computes.
import { GraphBuilder } from "../builder.ts";
import type { Graph, Value } from "../types.ts";

export function offloadModelData(g: Graph): Graph {
  const b = new GraphBuilder();
  const copy = new Map<number, Value>(); // old value id -> value in the new graph
  const onDevice = new Map<string, Value>(); // "<phase>:<param value id>" -> device copy
  const hostGrad = new Map<number, Value>(); // old final-gradient value id -> its host copy
  const paramIds = new Set(g.params.map((p) => p.value.id));
  const gradName = new Map(Object.entries(g.grads).map(([name, v]) => [v.id, name]));

  for (const n of g.nodes) {
    b.phase = n.phase;
    const inputs = n.inputs.map((v) => {
      if (n.phase === "optimizer") return hostGrad.get(v.id) ?? copy.get(v.id)!;
      if (!paramIds.has(v.id)) return copy.get(v.id)!;
      const key = `${n.phase}:${v.id}`;
      if (!onDevice.has(key)) onDevice.set(key, b.value("copy_h2d", [copy.get(v.id)!], {}, n.loc));
      return onDevice.get(key)!;
    });
    const made = b.add(n.op, inputs, n.attrs, n.loc);
    n.outputs.forEach((out, k) => {
      copy.set(out.id, made.outputs[k]);
      const name = gradName.get(out.id);
      if (name !== undefined)
        hostGrad.set(out.id, b.value("copy_d2h", [made.outputs[k]], { name: `grad.${name}` }, n.loc));
    });
  }
  b.params.push(...g.params.map((p) => ({ ...p, value: copy.get(p.value.id)! })));
  for (const [k, v] of Object.entries(g.named)) b.named[k] = copy.get(v.id)!;
  for (const [k, v] of Object.entries(g.grads)) b.grads[k] = copy.get(v.id)!;
  return b.build();
}
