// Builds graphs node by node, inferring output types from the op table. Tracing and every pass that
// rewrites a graph use it, so value and node ids stay dense and unique within one graph.
import { opDef } from "./ops.ts";
import type { Attrs, Graph, Node, ParamInfo, Phase, SourceLoc, Value } from "./types.ts";

export class GraphBuilder {
  readonly nodes: Node[] = [];
  readonly params: ParamInfo[] = [];
  readonly named: Record<string, Value> = {};
  readonly grads: Record<string, Value> = {};
  phase: Phase = "forward";
  private nextValue = 0;

  /** Adds a node; throws ShapeError (from the op table) when the inputs do not fit. */
  add(op: string, inputs: readonly Value[], attrs: Attrs = {}, loc?: SourceLoc): Node {
    const def = opDef(op);
    const arity = def.arity;
    const okArity =
      arity === "variadic" ? inputs.length > 0 : typeof arity === "number" ? inputs.length === arity : arity.includes(inputs.length);
    if (!okArity) throw new Error(`internal: ${op} got ${inputs.length} inputs`);
    const types = def.infer(inputs, attrs);
    const outputs: Value[] = [];
    const node: Node = { id: this.nodes.length, op, inputs, outputs, attrs, loc, phase: this.phase };
    types.forEach((t, index) => outputs.push({ id: this.nextValue++, shape: t.shape, dtype: t.dtype, producer: node, index }));
    this.nodes.push(node);
    return node;
  }

  /** Adds a single-output node and returns its value. */
  value(op: string, inputs: readonly Value[], attrs: Attrs = {}, loc?: SourceLoc): Value {
    return this.add(op, inputs, attrs, loc).outputs[0];
  }

  build(): Graph {
    return { nodes: this.nodes, params: this.params, named: this.named, grads: this.grads };
  }

  /**
   * A builder that starts with a copy of `g`'s nodes (same objects, same ids), so a pass can append
   * to a graph without renumbering what is there.
   */
  static extend(g: Graph): GraphBuilder {
    const b = new GraphBuilder();
    b.nodes.push(...g.nodes);
    b.params.push(...g.params);
    Object.assign(b.named, g.named);
    Object.assign(b.grads, g.grads);
    for (const n of g.nodes) for (const v of n.outputs) b.nextValue = Math.max(b.nextValue, v.id + 1);
    return b;
  }
}
