// A reference interpreter of the IR in float64: runs a graph's nodes in order and returns every value.
// It is the oracle for tests of gradient rules and passes (finite differences of its forward against
// its backward), so each op's arithmetic lives in ir/interpret_ops.ts, independent of the rules.
import * as K from "./interpret_ops.ts";
import { maskLayout } from "./attention_mask.ts";
import { attentionDims, attentionGroup, attentionKeys, binaryBroadcast, fusedProgram, isCausal, lmHeadDims } from "./ops.ts";
import { type Graph, type Node, type NodeOf, type Shape, type Value, formatShape, numel } from "./types.ts";
import { formatNode } from "./printer.ts";
import { padAmounts } from "./movement.ts";

export type Tensor = Float64Array | Int32Array;
export type AdamOptions = K.AdamHyper;

export interface Feeds {
  /** Parameter values by parameter name. */
  params: Map<string, Float64Array>;
  /** Values of `input` nodes by their name attribute (i32 as Int32Array, f32 as Float64Array). */
  inputs: Record<string, Tensor>;
  /** Optimizer states by name (opt.m.<param>, opt.v.<param>); missing ones start at zero. */
  optState?: Map<string, Float64Array>;
  /** Hyperparameters of the adamw nodes; required when the graph has any. */
  adam?: AdamOptions;
}

/** Runs every node of `g`; returns each value's data by value id. Feeds are read, never modified. */
export function interpret(g: Graph, feeds: Feeds): Map<number, Tensor> {
  const env = new Map<number, Tensor>();
  for (const n of g.nodes) {
    const outs = evalNode(n, (v) => env.get(v.id)!, feeds);
    n.outputs.forEach((v, i) => {
      if (outs[i].length !== numel(v.shape))
        throw new Error(`interpret: ${outs[i].length} elements for %${v.id} of shape ${formatShape(v.shape)}: ${formatNode(n)}`);
      env.set(v.id, outs[i]);
    });
  }
  return env;
}

function leaf(kind: string, name: string, data: Tensor | undefined, shape: Shape, isInt: boolean): Tensor {
  if (!data) throw new Error(`interpret: no value fed for ${kind} ${name}`);
  if (data instanceof Int32Array !== isInt)
    throw new Error(`interpret: ${kind} ${name} must be fed as ${isInt ? "Int32Array" : "Float64Array"}`);
  if (data.length !== numel(shape))
    throw new Error(`interpret: ${kind} ${name} has ${data.length} elements, its shape ${formatShape(shape)} needs ${numel(shape)}`);
  return data;
}

/** An attention node's dimensions, causal flag and mask (its input `maskInput`, if it has one), from q and k (its first two inputs). */
function attentionOf(n: NodeOf<"attention"> | NodeOf<"attention_bwd">, maskInput: number, get: (v: Value) => Tensor): K.AttentionDims {
  const [q, k] = n.inputs.map((v) => v.shape);
  const dims = { ...attentionDims(q), Tk: attentionKeys(k), group: attentionGroup(q, k), causal: isCausal(n.attrs) };
  const mask = n.inputs[maskInput];
  if (!mask) return dims;
  const layout = maskLayout(q, dims.Tk, mask.shape);
  if (typeof layout === "string") throw new Error(`internal: attention: ${layout}`);
  return { ...dims, mask: { values: get(mask) as Float64Array, layout } };
}

/** One node's outputs, its inputs read through `get`. */
export function evalNode(n: Node, get: (v: Value) => Tensor, feeds: Feeds): Tensor[] {
  const f = (i: number) => get(n.inputs[i]) as Float64Array;
  const int = (i: number) => get(n.inputs[i]) as Int32Array;
  const shape = (i: number) => n.inputs[i].shape;
  const last = (s: Shape) => s[s.length - 1];
  const outShape = n.outputs[0]?.shape;
  switch (n.op) {
    case "param":
      return [leaf("param", n.attrs.name, feeds.params.get(n.attrs.name), outShape, false)];
    case "opt_state": {
      const fed = feeds.optState?.get(n.attrs.name);
      return [fed ? leaf("opt_state", n.attrs.name, fed, outShape, false) : new Float64Array(numel(outShape))];
    }
    case "input":
      return [leaf("input", n.attrs.name, feeds.inputs[n.attrs.name], outShape, n.attrs.dtype === "i32")];
    case "iota":
      return [Int32Array.from({ length: n.attrs.n }, (_, i) => i)];
    case "fill":
      return [new Float64Array(numel(outShape)).fill(n.attrs.value)];
    case "embedding":
      return [K.embedding(f(0), shape(0)[0], shape(0)[1], int(1))];
    case "embedding_bwd":
      return [K.embeddingBwd(int(0), f(1), n.attrs.V, last(shape(1)))];
    case "embedding_bwd_acc": {
      const rows = K.embeddingBwd(int(1), f(2), shape(0)[0], last(shape(2)));
      return [K.broadcast(f(0), rows, (x, y) => x + y)];
    }
    case "matmul":
      return [K.matmul(f(0), shape(0), f(1), shape(1), n.attrs.ta === true, n.attrs.tb === true)];
    case "add":
      return [K.broadcast(f(0), f(1), (x, y) => x + y)];
    case "mul":
      return [K.broadcast(f(0), f(1), (x, y) => x * y)];
    case "scale":
      return [f(0).map((x) => x * n.attrs.s)];
    case "sum_rows":
      return [K.sumRows(f(0), numel(n.attrs.to))];
    case "layernorm":
      return [K.layernorm(f(0), f(1), n.inputs.length === 3 ? f(2) : undefined, last(shape(0)), n.attrs.eps)];
    case "layernorm_bwd":
      return K.layernormBwd(f(0), f(1), f(2), last(shape(0)), n.attrs.eps).slice(0, n.outputs.length);
    case "unary": {
      const { fn, p = 0 } = n.attrs;
      return [f(0).map((x) => K.unaryValue(fn, x, p))];
    }
    case "unary_bwd": {
      const { fn, p = 0 } = n.attrs;
      const dy = f(1);
      return [f(0).map((x, i) => dy[i] * K.unaryDerivative(fn, x, p))];
    }
    case "binary": {
      const { inner, nb } = binaryBroadcast(shape(0), shape(1))!;
      const b = f(1);
      return [f(0).map((x, i) => K.binaryValue(n.attrs.fn, x, b[K.broadcastIndex(i, inner, nb)]))];
    }
    case "binary_bwd": {
      const { fn, side } = n.attrs;
      const { inner, nb } = binaryBroadcast(shape(0), shape(1))!;
      const b = f(1);
      const dy = f(2);
      return [f(0).map((x, i) => dy[i] * K.binaryDerivative(fn, x, b[K.broadcastIndex(i, inner, nb)], side))];
    }
    case "reduce":
      return [K.reduceRows(n.attrs.fn, f(0), last(shape(0)))];
    case "reduce_bwd": {
      const C = last(outShape);
      if (n.inputs.length === 3) return [K.reduceRowsBwd(n.attrs.fn, f(0), f(1), f(2), C)];
      return [K.reduceRowsBwd(n.attrs.fn, new Float64Array(numel(outShape)), new Float64Array(0), f(0), C)];
    }
    case "gelu":
      return [K.gelu(f(0))];
    case "gelu_bwd":
      return [K.geluBwd(f(0), f(1))];
    case "attention":
      return K.attention(f(0), f(1), f(2), attentionOf(n, 3, get));
    case "attention_bwd":
      return K.attentionBwd(f(0), f(1), f(2), f(3), f(4), f(5), attentionOf(n, 6, get), n.attrs.maskGrad === true);
    case "dropout":
      return [K.dropout(f(0), n.attrs.p, n.attrs.seed, feeds.adam?.t ?? 1)];
    case "rope":
      return [K.rope(f(0), shape(0)[shape(0).length - 2], last(shape(0)), n.attrs.base, n.attrs.inverse === true)];
    case "silu":
      return [K.silu(f(0))];
    case "silu_bwd":
      return [K.siluBwd(f(0), f(1))];
    case "cross_entropy":
      return [K.crossEntropy(f(0), int(1), last(shape(0)))];
    case "cross_entropy_bwd":
      return [K.crossEntropyBwd(f(0), int(1), f(2)[0], last(shape(0)))];
    case "linear_cross_entropy": {
      const { C, V, tb } = lmHeadDims(n.inputs, n.attrs);
      return K.linearCrossEntropy(f(0), f(1), int(2), C, V, tb);
    }
    case "linear_cross_entropy_bwd": {
      const { C, V, tb } = lmHeadDims(n.inputs, n.attrs);
      return K.linearCrossEntropyBwd(f(0), f(1), int(2), f(3), f(4)[0], C, V, tb);
    }
    case "reshape":
      return [get(n.inputs[0]).slice()];
    // Data movement keeps the input's dtype (an i32 tensor stays an Int32Array).
    case "transpose":
      return [K.transpose(get(n.inputs[0]), shape(0), n.attrs.perm)];
    case "split":
      return K.split(get(n.inputs[0]), last(shape(0)), n.attrs.sizes);
    case "concat": {
      // Along axis a, the parts are rows of (their length along a) x (the axes after a) elements.
      const axis = n.attrs.axis ?? shape(0).length - 1;
      const rows = (s: Shape) => [numel(s.slice(0, axis)), numel(s.slice(axis))];
      return [
        K.concat(
          n.inputs.map((v) => get(v)),
          n.inputs.map((v) => rows(v.shape)),
        ),
      ];
    }
    case "grad_norm":
      return [K.globalNorm(n.inputs.map((_, i) => f(i)))];
    case "adamw": {
      if (!feeds.adam) throw new Error("interpret: the graph has adamw nodes but no adam hyperparameters were given");
      const norm = n.inputs.length === 5 ? f(4)[0] : undefined;
      return K.adamw(f(0), f(1), f(2), f(3), feeds.adam, n.attrs.decay === true, norm);
    }
    // Copies and views move data without changing it.
    case "copy_d2h":
    case "wait":
    case "tp_copy":
      return [get(n.inputs[0]).slice()];
    case "chunk_h2d":
      return [
        K.concat(
          n.inputs.map((_, i) => f(i)),
          n.inputs.map((v) => [numel(v.shape)]),
        ),
      ];
    case "chunk_view": {
      const start = n.attrs.offset / 4;
      return [f(0).slice(start, start + numel(n.attrs.shape))];
    }
    // Ops whose meaning involves other ranks: test/helpers/spmd.ts runs them across simulated ranks.
    case "all_reduce":
    case "zero_adamw":
    case "zero_gather":
    case "zero_param_shard":
    case "zero_all_gather":
    case "zero_pack":
    case "zero_reduce_scatter":
    case "all_gather":
    case "reduce_scatter":
    case "broadcast":
    case "shard_slice":
    case "embedding_vp":
    case "embedding_vp_bwd":
    case "cross_entropy_vp_max":
    case "cross_entropy_vp_sums":
    case "cross_entropy_vp":
    case "cross_entropy_vp_bwd":
    case "sum_squares":
    case "norm_from_squares":
      throw new Error(`interpret: ${n.op} runs across ranks; interpret it per rank (test/helpers/spmd.ts): ${formatNode(n)}`);
    case "slice":
      return [K.sliceAxis(get(n.inputs[0]), shape(0), n.attrs.dim, n.attrs.start, n.attrs.length)];
    case "pad": {
      const { before, after } = padAmounts(shape(0).length, n.attrs.before, n.attrs.after);
      return [K.pad(get(n.inputs[0]), shape(0), before, after, n.attrs.value)];
    }
    case "expand":
      return [K.expand(get(n.inputs[0]), shape(0), outShape)];
    case "expand_bwd":
      return [K.expandBwd(f(0), shape(0), outShape)];
    case "index_select":
      return [K.indexSelect(get(n.inputs[0]), shape(0), n.attrs.dim, int(1), shape(1))];
    case "index_select_bwd":
      return [K.indexSelectBwd(int(0), shape(0), f(1), shape(1), n.attrs.dim, n.attrs.D)];
    case "gather":
      return [K.gather(get(n.inputs[0]), shape(0), n.attrs.dim, int(1), shape(1))];
    case "gather_bwd":
      return [K.gatherBwd(int(0), shape(0), f(1), n.attrs.dim, n.attrs.D)];
    case "where": {
      const [c, a, b] = [f(0), f(1), f(2)];
      const at = (i: number, x: Float64Array, s: Shape) => {
        const { inner, nb } = binaryBroadcast(outShape, s)!;
        return x[K.broadcastIndex(i, inner, nb)];
      };
      return [
        Float64Array.from({ length: numel(outShape) }, (_, i) => (at(i, c, shape(0)) !== 0 ? at(i, a, shape(1)) : at(i, b, shape(2)))),
      ];
    }
    case "fused":
      return evalFused(n, get, feeds);
    default:
      return unreachable(n);
  }
}

/**
 * A fused node: each step evaluated as the op it was, on whole tensors, so the fused node means exactly
 * what its group of nodes meant (a step's value stands in as the value that op gave).
 */
function evalFused(n: NodeOf<"fused">, get: (v: Value) => Tensor, feeds: Feeds): Tensor[] {
  const program = fusedProgram(n.inputs, n.attrs);
  const stepValues: Value[] = [];
  const data = new Map<Value, Tensor>();
  program.steps.forEach((s, i) => {
    const inputs = s.args.map((a) => (a.from === "input" ? n.inputs[a.index] : stepValues[a.index]));
    const step = { ...n, op: s.op, attrs: s.attrs, inputs, outputs: [] as Value[] } as Node;
    const out: Value = { id: -1, shape: program.shapes[i], dtype: "f32", producer: step, index: 0 };
    (step.outputs as Value[]).push(out);
    data.set(out, evalNode(step, (v) => data.get(v) ?? get(v), feeds)[0]);
    stepValues.push(out);
  });
  return n.attrs.outs.map((k) => data.get(stepValues[k])!);
}

function unreachable(n: never): never {
  throw new Error(`interpret: op ${(n as Node).op} has no reference semantics`);
}
