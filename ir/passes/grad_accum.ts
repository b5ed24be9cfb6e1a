// Gradient accumulation (--grad-accum K): one step runs K micro-batches through the forward and the
// backward, one after the other, sums their gradients and makes one update. The program is unrolled:
// the training graph (forward and backward, after recompute) is repeated K times over the same
// parameters, each copy reading its rows of the step's inputs through a view, and each parameter's
// gradient is added to the running sum as soon as its copy has made it. So a micro-batch's activations
// die before the next one's are made, and the memory plan and the cost model see the real step, with
// no new runtime mechanism. The loss and the gradients are those of the mean over the K micro-batches
// (each a mean over its rows): the sums scaled by 1/K, which is the whole batch's mean when they are
// equal in size.
// Runs after recompute and before the data-parallel average and the optimizer.
import { GraphBuilder } from "../builder.ts";
import { type Graph, type Value, numel, trainedParams } from "../types.ts";

export function accumulateGradients(g: Graph, k: number): Graph {
  if (k === 1) return g;
  const b = new GraphBuilder();
  const shared = new Map<number, Value>(); // parameter and input value id -> the value every copy reads
  const inputs = new Map<number, Value>(); // input value id -> the whole step's input, K copies' rows
  const traced = new Map<number, { value: Value; name: string }>(); // input value id -> the traced input (one copy's rows)
  for (const n of g.nodes) {
    if (n.op === "param") {
      b.phase = n.phase;
      shared.set(n.outputs[0].id, b.copy(n, []).outputs[0]);
    } else if (n.op === "input") {
      b.phase = n.phase;
      const [rows, ...rest] = n.attrs.shape;
      traced.set(n.outputs[0].id, { value: n.outputs[0], name: n.attrs.name });
      inputs.set(n.outputs[0].id, b.value("input", [], { ...n.attrs, shape: [k * rows, ...rest] }, n.loc));
    }
  }
  const sums = new Map<string, Value>(); // parameter name -> its gradient summed over the copies so far
  let loss: Value | undefined;
  const last = new Map<number, Value>(); // value id -> the last copy's (for named values)
  for (let copy = 0; copy < k; copy++) {
    const local = new Map<number, Value>(shared);
    for (const [id, whole] of inputs) {
      const { value: v, name } = traced.get(id)!;
      const bytes = numel(v.shape) * 4; // i32 or f32: 4 bytes an element either way
      b.phase = v.producer.phase;
      local.set(id, b.value("chunk_view", [whole], { offset: copy * bytes, shape: v.shape, name }));
    }
    for (const n of g.nodes) {
      if (n.op === "param" || n.op === "input") continue;
      b.phase = n.phase;
      const made = b.copy(
        n,
        n.inputs.map((v) => local.get(v.id)!),
      );
      n.outputs.forEach((v, i) => local.set(v.id, made.outputs[i]));
    }
    // This copy's gradients join the sums right after it, so each copy's die at once.
    b.phase = "backward";
    for (const p of trainedParams(g)) {
      const grad = local.get(g.grads[p.name].id)!;
      const sum = sums.get(p.name);
      sums.set(p.name, sum ? b.value("add", [sum, grad], {}, p.loc) : grad);
    }
    const l = local.get(g.named.loss.id)!;
    loss = loss ? b.value("add", [loss, l], {}, l.producer.loc) : l;
    for (const [id, v] of local) last.set(id, v);
  }
  b.phase = "backward";
  for (const p of trainedParams(g)) b.grads[p.name] = b.value("scale", [sums.get(p.name)!], { s: 1 / k }, p.loc);
  b.params.push(...g.params.map((p) => ({ ...p, value: shared.get(p.value.id)! })));
  for (const [name, v] of Object.entries(g.named)) b.named[name] = inputs.get(v.id) ?? last.get(v.id)!;
  b.named.loss = b.value("scale", [loss!], { s: 1 / k }, loss!.producer.loc);
  return b.build();
}
