// The inference program returns the logits of one position, the one generation samples from, instead
// of all seq of them: a `position` input selects a row before the LM head, so the program never holds
// (seq, vocab) logits (for GPT-2 at seq 1024, 206 MB). When the logits come, through reshapes, from a
// matmul with a 2-D right operand (the LM head), the row is taken from that matmul's left operand and
// only one row of the product is computed; otherwise the row is taken from the logits. Nodes that no
// longer feed a result are dropped.
import { GraphBuilder } from "../builder.ts";
import type { Graph, Node, Value } from "../types.ts";

export function selectPosition(g: Graph): Graph {
  const logits = g.named.logits;
  const vocab = logits.shape[logits.shape.length - 1];
  const b = GraphBuilder.extend(g);
  const position = b.value("input", [], { name: "position", shape: [1], dtype: "i32" });
  let head = logits.producer;
  while (head.op === "reshape") head = head.inputs[0].producer;
  const [rows, weight] = head.inputs;
  const isHead = head.op === "matmul" && head.attrs.ta !== true && rows.shape.length === 2 && weight.shape.length === 2;
  let row: Value;
  if (isHead) {
    const picked = b.value("embedding", [rows, position], {}, head.loc);
    row = b.value("matmul", [picked, weight], head.attrs, head.loc);
  } else {
    const table = b.value("reshape", [logits], { shape: [logits.shape.reduce((s, d) => s * d, 1) / vocab, vocab] }, logits.producer.loc);
    row = b.value("embedding", [table, position], {}, logits.producer.loc);
  }
  const named = { ...b.named, position, logits: row };
  return withoutDeadNodes({ nodes: b.nodes, params: b.params, named, grads: b.grads });
}

/** Keeps the nodes a named result depends on, and every parameter (the runtime's table lists them all). */
function withoutDeadNodes(g: Graph): Graph {
  const live = new Set<Node>();
  const visit = (v: Value) => {
    const n = v.producer;
    if (live.has(n)) return;
    live.add(n);
    n.inputs.forEach(visit);
  };
  Object.values(g.named).forEach(visit);
  for (const p of g.params) live.add(p.value.producer);
  return { ...g, nodes: g.nodes.filter((n) => live.has(n)) };
}
