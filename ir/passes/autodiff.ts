// Reverse-mode autodiff: seeds d(loss) = 1, walks the forward nodes backwards applying each op's rule
// (ir/grad_rules.ts), sums the gradients of values used more than once, and records each parameter's
// final gradient in graph.grads. Only values that depend on a parameter get gradients.
import { GraphBuilder } from "../builder.ts";
import { GRAD_RULES, type GradRule } from "../grad_rules.ts";
import { UserError } from "../../base/errors.ts";
import { type Graph, type SourceLoc, type Value, trainedParams } from "../types.ts";

/**
 * A parameter the loss does not depend on (a module built but never called in forward, a weight read
 * only where no gradient flows): it could never train, so it is the model's mistake, at the line that
 * made the parameter. The driver reports it there, as a trace error.
 */
export class UnusedParameterError extends UserError {
  constructor(
    readonly param: string,
    readonly loc: SourceLoc | undefined,
  ) {
    super(
      `parameter ${param} does not affect the loss, so it would never train: ` +
        "use it in forward, or remove the module or parameter that makes it",
    );
    this.name = "UnusedParameterError";
  }
}

export function autodiff(g: Graph): Graph {
  const loss = g.named.loss;
  if (!loss) throw new Error("internal: autodiff needs a graph with a loss");
  const b = GraphBuilder.extend(g);
  b.phase = "backward";

  // Buffers are constants here: nothing that depends only on them needs a gradient.
  const dependsOnParam = new Set<number>(trainedParams(g).map((p) => p.value.id));
  for (const n of g.nodes) if (n.inputs.some((v) => dependsOnParam.has(v.id))) n.outputs.forEach((v) => dependsOnParam.add(v.id));

  const grads = new Map<number, Value>();
  const accumulate = (v: Value, dv: Value, loc = v.producer.loc) => {
    const prev = grads.get(v.id);
    grads.set(v.id, prev ? b.add("add", [prev, dv], {}, loc).outputs[0] : dv);
  };
  accumulate(loss, b.value("fill", [], { shape: [], value: 1 }, loss.producer.loc));

  for (const n of [...g.nodes].reverse()) {
    const dys = n.outputs.map((v) => grads.get(v.id));
    if (dys.every((d) => d === undefined)) continue;
    const wants = n.inputs.map((v) => dependsOnParam.has(v.id));
    if (!wants.some(Boolean)) continue;
    const rule = GRAD_RULES[n.op] as GradRule | null;
    if (!rule) throw new Error(`internal: op ${n.op} has no gradient rule`);
    const dxs = rule(b, n, dys, wants);
    n.inputs.forEach((x, i) => {
      const dx = dxs[i];
      if (wants[i] && dx) accumulate(x, dx, n.loc);
    });
  }

  for (const p of trainedParams(g)) {
    const dp = grads.get(p.value.id);
    if (!dp) throw new UnusedParameterError(p.name, p.loc);
    b.grads[p.name] = dp;
  }
  return b.build();
}
