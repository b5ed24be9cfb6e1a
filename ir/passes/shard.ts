// Tensor parallelism in the Megatron-LM 1D style: rewrites the traced forward graph into the graph that
// every rank runs (one program, SPMD). Parameters with a parallel hint (src/dsl/parameter.ts) become
// this rank's part of the full parameter, and each value of the traced graph is either whole on every
// rank or split along one axis. The rules follow the split through the model:
//   - column-parallel linear (weight cut by output features): its input is whole, its output split;
//   - row-parallel linear (cut by input features) on a split input: each rank holds a partial sum, and
//     an all_reduce makes it whole;
//   - vocabulary-parallel embedding: each rank looks up the tokens of its rows, and an all_reduce sums;
//   - the tied LM head is column-parallel over the vocabulary, and the cross-entropy of split logits is
//     vocabulary-parallel (row max, then sums of exponentials and target logits, all-reduced): the full
//     logits are never gathered;
//   - elementwise ops, reshapes, transposes, splits, rope and attention keep the split (attention over
//     heads; a single K/V head may stay whole beside split query heads: multi-query attention; a mask
//     with a heads axis is cut to the rank's heads, one without is read whole);
// A whole value that feeds a split result goes through tp_copy (Megatron's f: its gradient is
// all-reduced), so that the gradient of every whole value is whole on every rank. Any other op with a
// split input gets its inputs whole first with an all_gather. Runs before autodiff, which
// differentiates the collectives with the rules of ir/grad_rules.ts.
import { GraphBuilder } from "../builder.ts";
import { SettingError, type SettingNames } from "../../base/errors.ts";
import type { AttrsOf, OpName } from "../op_attrs.ts";
import { type Graph, type Node, type NodeOf, type ParamInfo, type SourceLoc, type Value, formatLoc, formatShape, numel } from "../types.ts";
import { reshapeSplit } from "./shard_reshape.ts";

/** A graph that cannot be cut across this many ranks; names the dimension and the model line. */
export class ShardError extends SettingError {
  constructor(
    phrase: (name: SettingNames) => string,
    readonly loc?: SourceLoc,
  ) {
    super(phrase);
    this.name = "ShardError";
  }
}

type Layout = { kind: "whole" } | { kind: "split"; axis: number; groups: number };
const WHOLE: Layout = { kind: "whole" };

interface Local {
  value: Value;
  layout: Layout;
}

export function shard(g: Graph, ranks: number): Graph {
  if (ranks === 1) return g;
  return new Sharder(g, ranks).run();
}

class Sharder {
  private readonly b = new GraphBuilder();
  private readonly local = new Map<number, Local>();
  private readonly copies = new Map<number, Value>(); // whole value id -> its tp_copy
  private readonly reshapes = new Map<string, Value>(); // whole value id, shape, region -> its reshape
  private readonly params = new Map<string, ParamInfo>();
  private readonly problems: string[] = [];
  private readonly consumers = new Map<number, Node[]>();
  private readonly inputs = new Map<number, Value>(); // traced input value id -> this rank's input
  private node!: Node;

  constructor(
    private readonly g: Graph,
    private readonly ranks: number,
  ) {
    for (const n of g.nodes) for (const v of n.inputs) this.consumers.set(v.id, [...(this.consumers.get(v.id) ?? []), n]);
  }

  run(): Graph {
    for (const n of this.g.nodes) {
      this.node = n;
      this.b.phase = n.phase;
      if (n.op !== "param") this.checkParams();
      const outs = this.rule(
        n,
        n.inputs.map((v) => this.local.get(v.id)!),
      );
      n.outputs.forEach((v, k) => this.local.set(v.id, outs[k]));
    }
    this.checkParams();
    for (const p of this.g.params) this.b.params.push(this.params.get(p.name)!);
    for (const [name, v] of Object.entries(this.g.named)) {
      this.node = v.producer;
      this.b.named[name] = this.inputs.get(v.id) ?? this.whole(this.local.get(v.id)!, v);
    }
    return this.b.build();
  }

  private checkParams(): void {
    if (this.problems.length === 0) return;
    throw new ShardError(
      (name) =>
        `${name("tp")} ${this.ranks} does not divide these parameters:\n` + [...new Set(this.problems)].map((p) => `  ${p}`).join("\n"),
    );
  }

  /** Adds a node for the traced node being rewritten: its line, and its checkpoint region. */
  private emit<K extends OpName>(op: K, inputs: Value[], attrs: AttrsOf<K> = {} as AttrsOf<K>): Value[] {
    const region = this.node.attrs.ckpt;
    const marked = region === undefined || attrs.ckpt !== undefined ? attrs : { ...attrs, ckpt: region };
    return [...this.b.add(op, inputs, marked, this.node.loc).outputs];
  }

  private same(n: Node, inputs: Value[], layouts: Layout[], attrs: Node["attrs"] = n.attrs): Local[] {
    return this.emit(n.op, inputs, attrs).map((value, k) => ({ value, layout: layouts[k] ?? layouts[0] }));
  }

  private rule(n: Node, ins: Local[]): Local[] {
    const values = ins.map((x) => x.value);
    const allWhole = ins.every((x) => x.layout.kind === "whole");
    switch (n.op) {
      case "param":
        return [this.param(n)];
      case "input": {
        // Every rank reads the same batch; rank 0's is the one used, so the ranks cannot disagree.
        const input = this.emit("input", [], n.attrs)[0];
        this.inputs.set(n.outputs[0].id, input);
        return [{ value: this.emit("broadcast", [input], { root: 0 })[0], layout: WHOLE }];
      }
      case "iota":
      case "fill":
        return this.same(n, values, [WHOLE]);
      case "embedding":
        return [this.embedding(n, ins)];
      case "matmul":
        return this.matmul(n, ins) ?? this.gathered(n, ins);
      case "add":
      case "mul":
        return this.binary(n, ins) ?? this.gathered(n, ins);
      case "scale":
      case "gelu":
      case "silu":
        return this.same(n, values, [ins[0].layout]);
      case "rope": {
        // Rotates along the last two axes (positions, features): any split outside them is kept.
        const x = ins[0].layout;
        return x.kind === "split" && x.axis < n.inputs[0].shape.length - 2 ? this.same(n, values, [x]) : this.gathered(n, ins);
      }
      case "attention":
        return this.attention(n, ins) ?? this.gathered(n, ins);
      case "reshape":
        return allWhole ? [this.wholeReshape(n, values[0])] : [this.reshape(n, ins[0])];
      case "transpose": {
        const x = ins[0].layout;
        const perm = n.attrs.perm;
        return this.same(n, values, [x.kind === "whole" ? x : { ...x, axis: perm.indexOf(x.axis) }]);
      }
      case "split":
        return allWhole ? this.same(n, values, [WHOLE]) : this.split(n, ins[0]);
      case "cross_entropy":
        return allWhole ? this.same(n, values, [WHOLE]) : [this.crossEntropy(n, ins)];
      default:
        return allWhole ? this.same(n, values, [WHOLE]) : this.gathered(n, ins);
    }
  }

  private param(n: NodeOf<"param">): Local {
    const info = this.g.params.find((p) => p.value.id === n.outputs[0].id)!;
    const style = n.attrs.parallel;
    if (style === undefined) {
      const value = this.emit("param", [], n.attrs)[0];
      this.params.set(info.name, { ...info, value });
      return { value, layout: WHOLE };
    }
    const axis = style === "row" ? 1 : 0;
    const groups = n.attrs.groups ?? 1;
    const full = info.shape[axis];
    const perGroup = full / groups;
    const what = style === "row" ? "input features" : style === "vocab" ? "rows" : "output features";
    const where = `${info.name.replace(/\.\d+\./, ".*.")} ${formatShape(info.shape)} (${style}-parallel, ${formatLoc(info.loc)})`;
    // A vocabulary is padded to a multiple of the ranks (50257 is prime); other dimensions must divide.
    if (style !== "vocab" && (!Number.isInteger(perGroup) || perGroup % this.ranks !== 0))
      this.problems.push(
        `${where}: ${this.ranks} ranks do not divide its ${groups > 1 ? `${groups} blocks of ${perGroup}` : full} ${what}`,
      );
    const shape = [...info.shape];
    shape[axis] = groups * Math.ceil(perGroup / this.ranks);
    const value = this.emit("param", [], { ...n.attrs, shape })[0];
    this.params.set(info.name, { ...info, shape, value, shard: { axis, groups, full, ranks: this.ranks } });
    return { value, layout: { kind: "split", axis, groups } };
  }

  private embedding(n: Node, [table, idx]: Local[]): Local {
    if (table.layout.kind === "whole") return this.same(n, [table.value, idx.value], [WHOLE])[0];
    if (table.layout.axis !== 0) return this.gathered(n, [table, idx])[0];
    const partial = this.emit("embedding_vp", [table.value, idx.value], { vocab: n.inputs[0].shape[0] })[0];
    return { value: this.emit("all_reduce", [partial], { reduce: "sum" })[0], layout: WHOLE };
  }

  private matmul(n: NodeOf<"matmul">, [A, B]: Local[]): Local[] | undefined {
    const ta = n.attrs.ta === true;
    const tb = n.attrs.tb === true;
    const rank = n.inputs[0].shape.length;
    if (A.layout.kind === "whole" && B.layout.kind === "whole") return this.same(n, [A.value, B.value], [WHOLE]);
    if (n.inputs[1].shape.length !== 2 || B.layout.kind !== "split") return undefined;
    const [nAxis, kAxis] = tb ? [0, 1] : [1, 0];
    // Column-parallel: each rank computes its columns of the output from the whole input.
    if (A.layout.kind === "whole" && B.layout.axis === nAxis)
      return this.same(n, [this.tpCopy(A.value), B.value], [{ kind: "split", axis: rank - 1, groups: B.layout.groups }]);
    // Row-parallel: each rank's part of the inner dimension gives a partial sum of the whole output.
    const aK = ta ? rank - 2 : rank - 1;
    if (A.layout.kind === "split" && A.layout.axis === aK && B.layout.axis === kAxis && A.layout.groups === 1 && B.layout.groups === 1) {
      const partial = this.emit("matmul", [A.value, B.value], n.attrs)[0];
      return [{ value: this.emit("all_reduce", [partial], { reduce: "sum" })[0], layout: WHOLE }];
    }
    return undefined;
  }

  /** add and mul: a split operand with a whole one broadcast over the split axis, or two alike. */
  private binary(n: Node, [A, B]: Local[]): Local[] | undefined {
    if (A.layout.kind === "whole" && B.layout.kind === "whole") return this.same(n, [A.value, B.value], [WHOLE]);
    if (A.layout.kind !== "split") return undefined;
    const offset = n.inputs[0].shape.length - n.inputs[1].shape.length;
    if (B.layout.kind === "whole") return A.layout.axis < offset ? this.same(n, [A.value, this.tpCopy(B.value)], [A.layout]) : undefined;
    return B.layout.axis + offset === A.layout.axis && B.layout.groups === A.layout.groups
      ? this.same(n, [A.value, B.value], [A.layout])
      : undefined;
  }

  /**
   * Attention on the rank's heads. Q, K and V split alike (by heads, or by a batch axis) keep the split.
   * Q split by heads with K and V whole and of one head (multi-query) pairs the rank's query heads with
   * the replicated K/V head; tp_copy sums the K/V gradients of the ranks' query heads. Whole K/V of
   * several heads cannot be paired with a part of the query heads: query head h reads KV head h / group,
   * which a rank's local head numbering does not reproduce. The mask follows q (`localMask`).
   */
  private attention(n: Node, [q, k, v, mask]: Local[]): Local[] | undefined {
    const rank = n.inputs[0].shape.length;
    if (q.layout.kind === "whole") {
      const whole = [q, k, v, ...(mask ? [mask] : [])].every((x) => x.layout.kind === "whole");
      return whole ? this.same(n, [q.value, k.value, v.value, ...(mask ? [mask.value] : [])], [WHOLE]) : undefined;
    }
    if (q.layout.axis >= rank - 2) return undefined;
    const maskValue = mask ? this.localMask(n, q.layout, mask) : [];
    if (!maskValue) return undefined;
    if (sameLayout(q.layout, k.layout) && sameLayout(q.layout, v.layout))
      return this.same(n, [q.value, k.value, v.value, ...maskValue], [q.layout]);
    if (q.layout.axis !== rank - 3 || k.layout.kind !== "whole" || v.layout.kind !== "whole") return undefined;
    const kvHeads = n.inputs[1].shape[rank - 3];
    if (kvHeads !== 1)
      throw new ShardError(
        (name) =>
          `${name("tp")} ${this.ranks} splits the ${n.inputs[0].shape[rank - 3]} query heads of this attention across ` +
          `the ranks, but its ${kvHeads} key/value heads are whole on every rank: only a single K/V head can be ` +
          `replicated; cut the K/V projections by heads (column-parallel), with ${this.ranks} dividing the K/V heads`,
        n.loc,
      );
    return this.same(n, [q.value, this.tpCopy(k.value), this.tpCopy(v.value), ...maskValue], [q.layout]);
  }

  /**
   * The mask beside this rank's part of q (split along q's axis `split.axis`), or undefined where it
   * cannot be had. A mask split along that axis (made from a parameter cut by heads) is the rank's
   * already. A whole mask that broadcasts along it (one for every head) is read whole, through tp_copy,
   * so that a learned one's gradient sums every rank's heads. A whole mask with that axis is sliced to
   * the rank's part (a view of it as [before, from the axis on], shard_slice, a view back), whose
   * gradient all_gather makes whole.
   */
  private localMask(n: Node, split: Extract<Layout, { kind: "split" }>, mask: Local): Value[] | undefined {
    const shape = n.inputs[3].shape;
    const axis = split.axis - (n.inputs[0].shape.length - shape.length); // the split axis in the mask's
    if (mask.layout.kind === "split") return mask.layout.axis === axis && mask.layout.groups === split.groups ? [mask.value] : undefined;
    if (axis < 0 || shape[axis] === 1) return [this.tpCopy(mask.value)];
    if (split.groups !== 1 || shape[axis] % this.ranks !== 0) return undefined;
    const rows = this.emit("reshape", [mask.value], { shape: [numel(shape.slice(0, axis)), numel(shape.slice(axis))] })[0];
    const part = this.emit("shard_slice", [rows], { ranks: this.ranks })[0];
    return [this.emit("reshape", [part], { shape: shape.map((d, a) => (a === axis ? d / this.ranks : d)) })[0]];
  }

  /**
   * A reshape of a whole value. Reshapes of one value to one shape (several linears reading one
   * activation) become one, so that its column-parallel readers share one tp_copy, whose gradient is
   * then one all_reduce of their summed gradients instead of one per reader.
   */
  private wholeReshape(n: NodeOf<"reshape">, x: Value): Local {
    const key = `${x.id}:${formatShape(n.attrs.shape)}:${String(n.attrs.ckpt)}`;
    if (!this.reshapes.has(key)) this.reshapes.set(key, this.emit("reshape", [x], n.attrs)[0]);
    return { value: this.reshapes.get(key)!, layout: WHOLE };
  }

  private reshape(n: NodeOf<"reshape">, x: Local): Local {
    const layout = x.layout as Extract<Layout, { kind: "split" }>;
    const to = n.attrs.shape;
    const mapped = reshapeSplit(n.inputs[0].shape, to, layout.axis, x.value.shape[layout.axis], this.ranks);
    if ("problem" in mapped) {
      const slot = this.attentionSlot(n.outputs[0]);
      const heads = slot === undefined ? "" : ` (the ${mapped.dim} ${slot === 0 ? "attention" : "key/value"} heads)`;
      throw new ShardError(
        (name) =>
          `${name("tp")} ${this.ranks} cannot split this reshape of ${formatShape(n.inputs[0].shape)} to ` +
          `${formatShape(to)} across the ranks: ${mapped.problem}${heads}`,
        n.loc,
      );
    }
    if (layout.groups > 1 && !mapped.direct)
      throw new ShardError(
        (name) =>
          `${name("tp")} ${this.ranks} cannot reshape a tensor whose split axis holds ${layout.groups} blocks ` +
          `(of a column-parallel layer) other than by keeping that axis`,
        n.loc,
      );
    const value = this.emit("reshape", [x.value], { ...n.attrs, shape: mapped.shape })[0];
    return { value, layout: { kind: "split", axis: mapped.axis, groups: layout.groups } };
  }

  private split(n: NodeOf<"split">, x: Local): Local[] {
    const layout = x.layout as Extract<Layout, { kind: "split" }>;
    const sizes = n.attrs.sizes;
    const last = n.inputs[0].shape.length - 1;
    if (layout.axis !== last) return this.same(n, [x.value], [layout]);
    // The blocks of a column-parallel layer (q, k, v): each rank splits its part of each block.
    if (layout.groups !== sizes.length || sizes.some((s) => s !== sizes[0]))
      throw new ShardError(
        (name) =>
          `${name("tp")} ${this.ranks}: this split into [${sizes.join(",")}] does not match the ${layout.groups} ` +
          `block(s) of the column-parallel layer before it (give the Linear groups: ${sizes.length})`,
        n.loc,
      );
    const part = x.value.shape[last] / sizes.length;
    return this.same(n, [x.value], [{ kind: "split", axis: last, groups: 1 }], { ...n.attrs, sizes: sizes.map(() => part) });
  }

  private crossEntropy(n: Node, [logits, targets]: Local[]): Local {
    const layout = logits.layout as Extract<Layout, { kind: "split" }>;
    if (layout.axis !== n.inputs[0].shape.length - 1 || layout.groups !== 1) return this.gathered(n, [logits, targets])[0];
    const vocab = n.inputs[0].shape[layout.axis];
    const localMax = this.emit("cross_entropy_vp_max", [logits.value], { vocab })[0];
    const max = this.emit("all_reduce", [localMax], { reduce: "max" })[0];
    const localSums = this.emit("cross_entropy_vp_sums", [logits.value, targets.value, max], { vocab })[0];
    const sums = this.emit("all_reduce", [localSums], { reduce: "sum" })[0];
    return { value: this.emit("cross_entropy_vp", [logits.value, targets.value, max, sums], { vocab })[0], layout: WHOLE };
  }

  /** Any other op: its inputs are made whole first, and it runs whole on every rank. */
  private gathered(n: Node, ins: Local[]): Local[] {
    return this.same(
      n,
      ins.map((x, k) => this.whole(x, n.inputs[k])),
      [WHOLE],
    );
  }

  /** The whole value of a split one: an all_gather along the last axis, less any padding. */
  private whole(x: Local, traced: Value): Value {
    if (x.layout.kind === "whole") return x.value;
    const last = traced.shape.length - 1;
    const { axis } = x.layout;
    if (axis !== last || x.layout.groups !== 1)
      throw new ShardError(
        (name) =>
          `${name("tp")} ${this.ranks} cannot run ${this.node.op} on a tensor split along axis ${axis} ` +
          `of ${formatShape(traced.shape)}: only the last axis can be gathered`,
        this.node.loc,
      );
    const gathered = this.emit("all_gather", [x.value], { ranks: this.ranks })[0];
    const padding = gathered.shape[last] - traced.shape[last];
    return padding === 0 ? gathered : this.emit("split", [gathered], { sizes: [traced.shape[last], padding] })[0];
  }

  private tpCopy(v: Value): Value {
    if (!this.copies.has(v.id)) this.copies.set(v.id, this.emit("tp_copy", [v])[0]);
    return this.copies.get(v.id)!;
  }

  /** Which input of an attention node (0 q, 1 k, 2 v) a traced value becomes through reshapes, transposes and rope. */
  private attentionSlot(v: Value): number | undefined {
    for (const c of this.consumers.get(v.id) ?? []) {
      if (c.op === "attention") return c.inputs.findIndex((x) => x.id === v.id);
      if (c.op !== "transpose" && c.op !== "reshape" && c.op !== "rope") continue;
      const slot = this.attentionSlot(c.outputs[0]);
      if (slot !== undefined) return slot;
    }
    return undefined;
  }
}

function sameLayout(a: Layout, b: Layout): boolean {
  return a.kind === b.kind && (a.kind === "whole" || (b.kind === "split" && a.axis === b.axis && a.groups === b.groups));
}
