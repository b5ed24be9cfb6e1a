// Builds graphs node by node, inferring output types from the op table. Tracing and every pass that
// rewrites a graph use it, so value and node ids stay dense and unique within one graph.
import { opDef } from "./ops.ts";
import type { AttrsOf, OpName } from "./op_attrs.ts";
import type { CopyPayload, DType, Graph, Node, NodeOf, ParamInfo, Phase, Placement, Shape, SourceLoc, Value } from "./types.ts";

export class GraphBuilder {
  readonly nodes: Node[] = [];
  readonly params: ParamInfo[] = [];
  readonly named: Record<string, Value> = {};
  readonly grads: Record<string, Value> = {};
  phase: Phase = "forward";
  private nextValue = 0;

  /**
   * Adds a node; throws ShapeError (from the op table) when the inputs do not fit. Attributes left out
   * are those the op does not need; `fields` sets a host placement or a copy's payload.
   */
  add<K extends OpName>(
    op: K,
    inputs: readonly Value[],
    attrs: AttrsOf<K> = {} as AttrsOf<K>,
    loc?: SourceLoc,
    fields: { placement?: Placement; payload?: CopyPayload } = {},
  ): NodeOf<K> {
    const def = opDef(op);
    const arity = def.arity;
    const okArity =
      arity === "variadic" ? inputs.length > 0 : typeof arity === "number" ? inputs.length === arity : arity.includes(inputs.length);
    if (!okArity) throw new Error(`internal: ${op} got ${inputs.length} inputs`);
    return this.addTyped(op, inputs, attrs, loc, fields, def.infer(inputs, attrs));
  }

  /** Adds a node whose output types are known. */
  private addTyped<K extends OpName>(
    op: K,
    inputs: readonly Value[],
    attrs: AttrsOf<K>,
    loc: SourceLoc | undefined,
    fields: { placement?: Placement; payload?: CopyPayload },
    types: readonly { shape: Shape; dtype: DType }[],
  ): NodeOf<K> {
    const outputs: Value[] = [];
    const { placement = "device", payload } = fields;
    const node = {
      id: this.nodes.length,
      op,
      inputs,
      outputs,
      attrs,
      loc,
      phase: this.phase,
      placement,
      ...(payload && { payload }),
    } as NodeOf<K>;
    types.forEach((t, index) => outputs.push({ id: this.nextValue++, shape: t.shape, dtype: t.dtype, producer: node as Node, index }));
    this.nodes.push(node as Node);
    return node;
  }

  /** Adds a single-output node and returns its value. */
  value<K extends OpName>(
    op: K,
    inputs: readonly Value[],
    attrs?: AttrsOf<K>,
    loc?: SourceLoc,
    fields?: { placement?: Placement; payload?: CopyPayload },
  ): Value {
    return this.add(op, inputs, attrs, loc, fields).outputs[0];
  }

  /**
   * Adds a copy of `n` reading `inputs`, in the builder's phase: its op, attributes, location, placement
   * and payload, but for what `changes` says.
   */
  copy(n: Node, inputs: readonly Value[], changes: { attrs?: Node["attrs"]; placement?: Placement } = {}): Node {
    const { attrs = n.attrs, placement = n.placement } = changes;
    const fields = { placement, payload: n.payload };
    // A copy whose inputs and attributes are the original's types has the original's output types: the
    // plan search copies whole graphs many times, and inferring every node again was a tenth of its time.
    if (attrs === n.attrs && sameTypes(inputs, n.inputs))
      return this.addTyped(n.op, inputs, attrs as AttrsOf<OpName>, n.loc, fields, n.outputs) as Node;
    return this.add(n.op, inputs, attrs as AttrsOf<OpName>, n.loc, fields) as Node;
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
    // One push at a time: spreading a graph of a few hundred thousand nodes into one call's arguments
    // overflows the stack (a capacity search at the disk tier's sizes plans such graphs).
    for (const n of g.nodes) b.nodes.push(n);
    for (const p of g.params) b.params.push(p);
    Object.assign(b.named, g.named);
    Object.assign(b.grads, g.grads);
    for (const n of g.nodes) for (const v of n.outputs) b.nextValue = Math.max(b.nextValue, v.id + 1);
    return b;
  }
}

/** Whether two input lists have the same dtypes and shapes, position by position. */
function sameTypes(a: readonly Value[], b: readonly Value[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const [x, y] = [a[i], b[i]];
    if (x.dtype !== y.dtype) return false;
    if (x.shape === y.shape) continue;
    if (x.shape.length !== y.shape.length) return false;
    for (let d = 0; d < x.shape.length; d++) if (x.shape[d] !== y.shape[d]) return false;
  }
  return true;
}
