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
    return this.addTyped(op, inputs, attrs, loc, fields.placement ?? "device", fields.payload, def.infer(inputs, attrs));
  }

  /**
   * Adds a node whose output types are known. A plan search copies whole graphs many times, so this
   * allocates only the node, its values and an outputs array of their exact length (an array grown by
   * push starts with room for 16, and was most of the bytes a copied graph took).
   */
  private addTyped<K extends OpName>(
    op: K,
    inputs: readonly Value[],
    attrs: AttrsOf<K>,
    loc: SourceLoc | undefined,
    placement: Placement,
    payload: CopyPayload | undefined,
    types: readonly { shape: Shape; dtype: DType }[],
  ): NodeOf<K> {
    const id = this.nodes.length;
    const phase = this.phase;
    const outputs = new Array<Value>(types.length);
    const node = (
      payload === undefined
        ? { id, op, inputs, outputs, attrs, loc, phase, placement }
        : { id, op, inputs, outputs, attrs, loc, phase, placement, payload }
    ) as NodeOf<K>;
    for (let index = 0; index < types.length; index++) {
      const { shape, dtype } = types[index];
      outputs[index] = { id: this.nextValue++, shape, dtype, producer: node as Node, index };
    }
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
  copy(n: Node, inputs: readonly Value[], changes?: { attrs?: Node["attrs"]; placement?: Placement }): Node {
    const attrs = changes?.attrs ?? n.attrs;
    const placement = changes?.placement ?? n.placement;
    // A copy whose inputs and attributes are the original's types has the original's output types: the
    // plan search copies whole graphs many times, and inferring every node again was a tenth of its time.
    if (attrs === n.attrs && sameTypes(inputs, n.inputs))
      return this.addTyped(n.op, inputs, attrs as AttrsOf<OpName>, n.loc, placement, n.payload, n.outputs) as Node;
    return this.add(n.op, inputs, attrs as AttrsOf<OpName>, n.loc, { placement, payload: n.payload }) as Node;
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
