// Checks every gradient rule (ir/grad_rules.ts, through the autodiff pass) against central finite
// differences of the reference interpreter's forward, in float64: for each op, random parameters ->
// the op -> a scalar loss that weights every output element by a fixed random tensor. Then the whole
// GPT-2 sample, and the interpreter's AdamW against a hand-written PyTorch formula and torch's numbers.
import { describe, expect, it } from "vitest";
import { GraphBuilder } from "../../ir/builder.ts";
import { type Feeds, interpret } from "../../ir/interpret.ts";
import { autodiff } from "../../ir/passes/autodiff.ts";
import { fuseLmHead } from "../../ir/passes/fuse_lm_head.ts";
import { type Graph, type Shape, type Value, numel } from "../../ir/types.ts";
import { verifyGraph } from "../../ir/verify.ts";
import { BINARY_FNS, REDUCE_FNS, UNARY_FNS, isComparison } from "../../ir/op_attrs.ts";
import { logSoftmax, rmsNorm, softmax } from "../../src/dsl/functional.ts";
import { Tensor } from "../../src/dsl/tensor.ts";
import { withTrace } from "../../src/dsl/trace.ts";
import gpt2 from "../../samples/gpt2.ts";
import palm from "../../samples/palm.ts";
import { buildModel, traceProgram } from "../../src/driver/trace_program.ts";
import { mulberry32 as rng } from "../../src/util/random.ts";

/** A graph under construction with its random parameter values and fed inputs. */
class Problem {
  readonly b = new GraphBuilder();
  readonly feeds: Feeds = { params: new Map(), inputs: {} };
  private readonly rand: () => number;

  constructor(seed = 1) {
    this.rand = rng(seed);
  }

  uniform(n: number, scale = 1): Float64Array {
    return Float64Array.from({ length: n }, () => scale * (2 * this.rand() - 1));
  }

  param(name: string, shape: Shape, scale = 1): Value {
    const value = this.b.value("param", [], { name, shape });
    this.b.params.push({ name, shape, init: { kind: "normal", std: 0.02 }, decay: shape.length >= 2, value });
    this.feeds.params.set(name, this.uniform(numel(shape), scale));
    return value;
  }

  /** A parameter with values in [0.5, 2], for functions defined on positive numbers. */
  positiveParam(name: string, shape: Shape): Value {
    const value = this.param(name, shape);
    this.feeds.params.set(
      name,
      this.feeds.params.get(name)!.map((v) => 1.25 + 0.75 * v),
    );
    return value;
  }

  ints(name: string, shape: Shape, data: number[]): Value {
    this.feeds.inputs[name] = Int32Array.from(data);
    return this.b.value("input", [], { name, shape, dtype: "i32" });
  }

  /** A fixed random f32 input: it gets no gradient and is left out of the check. */
  weights(name: string, shape: Shape): Value {
    this.feeds.inputs[name] = this.uniform(numel(shape));
    return this.b.value("input", [], { name, shape, dtype: "f32" });
  }

  /** loss = sum over outputs k of <out_k, W_k>, each W_k fixed and random. */
  weightedLoss(outs: Value[]): Graph {
    const terms = outs.map((out, k) => {
      const n = numel(out.shape);
      const row = this.b.value("reshape", [out], { shape: [1, n] });
      const dot = this.b.value("matmul", [row, this.weights(`w${k}`, [n, 1])], { ta: false, tb: false });
      return this.b.value("reshape", [dot], { shape: [] });
    });
    return this.lossIs(terms.reduce((acc, t) => this.b.value("add", [acc, t])));
  }

  lossIs(loss: Value): Graph {
    this.b.named.loss = loss;
    return this.b.build();
  }
}

interface Mismatch {
  param: string;
  index: number;
  analytic: number;
  finiteDiff: number;
}

const STEP = 1e-6;
const RTOL = 1e-6;
const ATOL = 1e-8;

/**
 * Differentiates `forward` with the autodiff pass and compares each parameter's gradient, as the
 * interpreter computes it from the backward graph, with central differences of the interpreted loss.
 * `sample` limits how many entries of each parameter are checked (all by default).
 */
function gradcheck(forward: Graph, feeds: Feeds, sample = Infinity): Mismatch[] {
  const g = autodiff(forward);
  verifyGraph(g);
  const env = interpret(g, feeds);
  const lossId = forward.named.loss.id;
  const lossAt = () => interpret(forward, feeds).get(lossId)![0];
  const pick = rng(7);
  const mismatches: Mismatch[] = [];
  for (const p of g.params) {
    const analytic = env.get(g.grads[p.name].id)!;
    expect(
      analytic.some((x) => Math.abs(x) > 1e-4),
      `gradient of ${p.name} is all but zero: a weak check`,
    ).toBe(true);
    const data = feeds.params.get(p.name)!;
    const indices = sample >= data.length ? data.keys() : Array.from({ length: sample }, () => Math.floor(pick() * data.length));
    for (const index of indices) {
      const original = data[index];
      data[index] = original + STEP;
      const up = lossAt();
      data[index] = original - STEP;
      const down = lossAt();
      data[index] = original;
      const finiteDiff = (up - down) / (2 * STEP);
      if (!(Math.abs(analytic[index] - finiteDiff) <= RTOL * Math.abs(finiteDiff) + ATOL))
        mismatches.push({ param: p.name, index, analytic: analytic[index], finiteDiff });
    }
  }
  return mismatches;
}

/** Builds a one-op problem: `build` returns the outputs to weight into the loss. */
function check(build: (p: Problem) => Value[], seed = 1): Mismatch[] {
  const p = new Problem(seed);
  const outs = build(p);
  return gradcheck(p.weightedLoss(outs), p.feeds);
}

const FLAG_COMBOS = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
] as const;

describe("gradient of each op matches finite differences", () => {
  it("embedding, with repeated and unused rows", () => {
    expect(
      check((p) => {
        const table = p.param("table", [5, 3]);
        const idx = p.ints("idx", [2, 3], [0, 2, 2, 4, 0, 1]);
        return [p.b.value("embedding", [table, idx])];
      }),
    ).toEqual([]);
  });

  for (const [ta, tb] of FLAG_COMBOS) {
    it(`matmul 2-D, ta=${ta} tb=${tb}`, () => {
      const [M, K, N] = [3, 4, 2];
      expect(
        check((p) => {
          const a = p.param("a", ta ? [K, M] : [M, K]);
          const b = p.param("b", tb ? [N, K] : [K, N]);
          return [p.b.value("matmul", [a, b], { ta, tb })];
        }),
      ).toEqual([]);
    });

    it(`matmul batched [2,3,...], ta=${ta} tb=${tb}`, () => {
      const [M, K, N] = [3, 4, 2];
      expect(
        check((p) => {
          const a = p.param("a", ta ? [2, 3, K, M] : [2, 3, M, K]);
          const b = p.param("b", tb ? [2, 3, N, K] : [2, 3, K, N]);
          return [p.b.value("matmul", [a, b], { ta, tb })];
        }),
      ).toEqual([]);
    });
  }

  for (const op of ["add", "mul"] as const) {
    for (const right of [[2, 3, 4], [3, 4], [4]]) {
      const kind = right.length === 3 ? "same shape" : `broadcast of [${right}]`;
      it(`${op}, ${kind}`, () => {
        expect(check((p) => [p.b.value(op, [p.param("a", [2, 3, 4]), p.param("b", right)])])).toEqual([]);
      });
    }
  }

  it("scale", () => {
    expect(check((p) => [p.b.value("scale", [p.param("x", [2, 5])], { s: -1.7 })])).toEqual([]);
  });

  it("layernorm", () => {
    expect(
      check((p) => {
        const x = p.param("x", [2, 3, 6], 2);
        return [p.b.value("layernorm", [x, p.param("w", [6]), p.param("b", [6])], { eps: 1e-5 })];
      }),
    ).toEqual([]);
  });

  it("gelu", () => {
    expect(check((p) => [p.b.value("gelu", [p.param("x", [3, 7], 3)])])).toEqual([]);
  });

  for (const shape of [
    [2, 3, 5, 4],
    [1, 3, 2],
  ]) {
    it(`attention on q, k, v of shape [${shape}]`, () => {
      expect(
        check((p) => {
          const [q, k, v] = ["q", "k", "v"].map((name) => p.param(name, shape, 1.5));
          return [p.b.add("attention", [q, k, v]).outputs[0]]; // lse is a by-product without a gradient
        }),
      ).toEqual([]);
    });
  }

  for (const [q, kv] of [
    [
      [2, 4, 5, 3],
      [2, 2, 5, 3],
    ],
    [
      [2, 4, 5, 3],
      [2, 1, 5, 3],
    ],
    [
      [3, 4, 2],
      [1, 4, 2],
    ],
  ]) {
    it(`attention with fewer KV heads: q [${q}], k and v [${kv}]`, () => {
      expect(
        check((p) => {
          const [qv, k, v] = [p.param("q", q, 1.5), p.param("k", kv, 1.5), p.param("v", kv, 1.5)];
          return [p.b.add("attention", [qv, k, v]).outputs[0]];
        }),
      ).toEqual([]);
    });
  }

  // Attention variants (one fused op with a causal flag, an optional additive mask, and Tq != Tk).
  const attentionCase = (q: Shape, kv: Shape, attrs: { causal?: boolean }, mask?: (p: Problem) => Value) =>
    check((p) => {
      const [qv, k, v] = [p.param("q", q, 1.5), p.param("k", kv, 1.5), p.param("v", kv, 1.5)];
      return [p.b.add("attention", [qv, k, v, ...(mask ? [mask(p)] : [])], attrs).outputs[0]];
    });
  /** A constant mask [Tq, Tk]: random finite values, -Infinity where `hidden` says, as an input (no gradient). */
  const maskInput = (Tq: number, Tk: number, hidden: (i: number, j: number) => boolean) => (p: Problem) => {
    const mask = p.weights("mask", [Tq, Tk]);
    const values = p.feeds.inputs.mask as Float64Array;
    values.forEach((x, e) => (values[e] = hidden(Math.floor(e / Tk), e % Tk) ? -Infinity : x));
    return mask;
  };

  it("attention, not causal", () => {
    expect(attentionCase([2, 3, 5, 4], [2, 3, 5, 4], { causal: false })).toEqual([]);
  });

  it("cross-attention: 3 queries against 6 keys and values, grouped heads, not causal", () => {
    expect(attentionCase([2, 4, 3, 4], [2, 2, 6, 4], { causal: false })).toEqual([]);
  });

  it("causal cross-attention: 5 queries against 3 keys (query i sees keys j <= i)", () => {
    expect(attentionCase([1, 2, 5, 4], [1, 1, 3, 4], {})).toEqual([]);
  });

  it("attention with an additive mask with -Infinity entries and a row that sees no key, not causal", () => {
    const mask = maskInput(4, 6, (i, j) => (i + j) % 3 === 0 || i === 2);
    expect(attentionCase([2, 2, 4, 3], [2, 1, 6, 3], { causal: false }, mask)).toEqual([]);
  });

  it("causal attention with an additive mask", () => {
    expect(
      attentionCase(
        [1, 2, 5, 4],
        [1, 2, 5, 4],
        {},
        maskInput(5, 5, (i, j) => j === 0 && i > 0),
      ),
    ).toEqual([]);
  });

  // A mask that broadcasts as PyTorch's attn_mask: a constant per-example padding mask, and learned
  // additive biases (T5/ALiBi style) whose gradient sums the scores' over the axes they broadcast over.
  it("attention with a per-example padding mask [B, 1, 1, Tk] (keys hidden from every query of an example)", () => {
    const mask = (p: Problem) => {
      const m = p.weights("mask", [2, 1, 1, 6]);
      (p.feeds.inputs.mask as Float64Array).forEach((_, e, values) => (values[e] = e % 6 >= [4, 5][Math.floor(e / 6)] ? -Infinity : 0));
      return m;
    };
    expect(attentionCase([2, 2, 3, 4], [2, 1, 6, 4], { causal: false }, mask)).toEqual([]);
  });

  for (const [q, kv, bias, causal] of [
    [[2, 3, 4, 5], [2, 3, 4, 5], [1, 3, 4, 4], false], // one bias per head
    [[2, 4, 3, 4], [2, 2, 6, 4], [2, 1, 3, 6], false], // per example, grouped heads, cross-attention
    [[2, 3, 5, 4], [2, 3, 5, 4], [3, 5, 5], true], // per head (rank 3), causal
    [[2, 3, 4, 5], [2, 3, 4, 5], [2, 3, 4, 4], false], // per example and head
    [[2, 2, 4, 3], [2, 2, 6, 3], [1, 6], false], // one row for every query
  ] as const) {
    it(`attention with a learned bias [${bias}], q [${q}], k and v [${kv}]${causal ? ", causal" : ""}`, () => {
      expect(attentionCase([...q], [...kv], causal ? {} : { causal: false }, (p) => p.param("bias", [...bias], 1.5))).toEqual([]);
    });
  }

  // The rule redraws the forward's mask (same seed and step): a different mask would not match.
  it("dropout", () => {
    expect(check((p) => [p.b.value("dropout", [p.param("x", [4, 25])], { p: 0.4, seed: 3 })])).toEqual([]);
  });

  it("layernorm without bias", () => {
    expect(check((p) => [p.b.value("layernorm", [p.param("x", [2, 3, 6], 2), p.param("w", [6])], { eps: 1e-5 })])).toEqual([]);
  });

  // base 3 turns every pair by a sizeable angle within five positions; 10000 is the usual base.
  for (const [base, inverse] of [
    [10000, false],
    [3, false],
    [3, true],
  ] as const) {
    it(`rope on [2,3,5,4], base ${base}${inverse ? ", inverse" : ""}`, () => {
      expect(check((p) => [p.b.value("rope", [p.param("x", [2, 3, 5, 4])], { base, inverse })])).toEqual([]);
    });
  }

  it("silu", () => {
    expect(check((p) => [p.b.value("silu", [p.param("x", [3, 7], 4)])])).toEqual([]);
  });

  it("cross_entropy (its output is the loss)", () => {
    const p = new Problem();
    const logits = p.param("logits", [2, 3, 5], 2);
    const targets = p.ints("targets", [2, 3], [4, 0, 2, 2, 1, 3]);
    expect(gradcheck(p.lossIs(p.b.value("cross_entropy", [logits, targets])), p.feeds)).toEqual([]);
  });

  for (const tb of [true, false]) {
    it(`linear_cross_entropy, weight stored ${tb ? "[V, C]" : "[C, V]"} (its first output is the loss)`, () => {
      const [N, C, V] = [5, 4, 7];
      const p = new Problem();
      const x = p.param("x", [N, C], 1.5);
      const w = p.param("w", tb ? [V, C] : [C, V], 1.5);
      const targets = p.ints("targets", [N], [6, 0, 3, 3, 1]);
      const [loss] = p.b.add("linear_cross_entropy", [x, w, targets], { tb, rows: 2, cols: 3 }).outputs;
      expect(gradcheck(p.lossIs(loss), p.feeds)).toEqual([]);
    });
  }

  it("reshape", () => {
    expect(check((p) => [p.b.value("reshape", [p.param("x", [2, 6])], { shape: [3, 2, 2] })])).toEqual([]);
  });

  for (const [shape, perm] of [
    [
      [3, 4],
      [1, 0],
    ],
    [
      [2, 3, 4],
      [2, 0, 1],
    ],
    [
      [2, 3, 4, 5],
      [0, 2, 1, 3],
    ],
  ] as const) {
    it(`transpose [${shape}] by [${perm}]`, () => {
      expect(check((p) => [p.b.value("transpose", [p.param("x", shape)], { perm })])).toEqual([]);
    });
  }

  it("split, every output used", () => {
    expect(check((p) => [...p.b.add("split", [p.param("x", [2, 3, 7])], { sizes: [2, 4, 1] }).outputs])).toEqual([]);
  });

  it("split with its middle output left unused", () => {
    expect(
      check((p) => {
        const [first, , last] = p.b.add("split", [p.param("x", [2, 7])], { sizes: [2, 4, 1] }).outputs;
        return [first, last];
      }),
    ).toEqual([]);
  });

  it("concat", () => {
    expect(check((p) => [p.b.value("concat", [p.param("a", [2, 3]), p.param("b", [2, 1]), p.param("c", [2, 2])])])).toEqual([]);
  });

  // The elementwise math and reductions, each function on its domain (positive where log, sqrt and
  // their kin need it), and each broadcast of the right operand: whole, trailing, a keepdim [..., 1].
  const POSITIVE_ONLY = new Set(["log", "sqrt", "rsqrt", "reciprocal", "pow"]);
  for (const fn of UNARY_FNS) {
    it(`unary ${fn}`, () => {
      expect(
        check((p) => {
          const x = POSITIVE_ONLY.has(fn) ? p.positiveParam("x", [3, 5]) : p.param("x", [3, 5], 2);
          return [p.b.value("unary", [x], { fn, p: 2.5 })];
        }),
      ).toEqual([]);
    });
  }

  for (const fn of BINARY_FNS.filter((f) => !isComparison(f))) {
    for (const right of [[2, 3, 4], [4], [2, 3, 1], [3, 1]]) {
      it(`binary ${fn}, right operand [${right}]`, () => {
        expect(
          check((p) => {
            const positive = fn === "div" || fn === "pow";
            const a = positive ? p.positiveParam("a", [2, 3, 4]) : p.param("a", [2, 3, 4]);
            const b = positive ? p.positiveParam("b", right) : p.param("b", right);
            return [p.b.value("binary", [a, b], { fn })];
          }),
        ).toEqual([]);
      });
    }
  }

  for (const fn of REDUCE_FNS) {
    it(`reduce ${fn} over the last axis`, () => {
      expect(check((p) => [p.b.value("reduce", [p.param("x", [2, 3, 5])], { fn })])).toEqual([]);
    });
  }

  it("a value used twice (by one node and by two nodes) gets the sum of its gradients", () => {
    expect(
      check((p) => {
        const x = p.param("x", [2, 3]);
        const squared = p.b.value("mul", [x, x]);
        return [p.b.value("add", [p.b.value("gelu", [x]), squared])];
      }),
    ).toEqual([]);
  });
});

describe("DSL composites built on the primitives", () => {
  const composites: [string, (x: Tensor, w: Tensor) => Tensor][] = [
    ["rmsNorm", (x, w) => rmsNorm(x, w, 1e-5)],
    ["softmax over the last axis", (x, w) => softmax(x.mul(w), -1)],
    ["logSoftmax over the last axis", (x, w) => logSoftmax(x.mul(w), -1)],
    [
      "x.pow(2).sum(-1) with tanh, sigmoid, relu, div and maximum",
      (x, w) => x.tanh().add(x.sigmoid()).div(x.relu().add(1)).maximum(w).pow(2).sum(-1),
    ],
  ];
  for (const [name, f] of composites) {
    it(name, () => {
      expect(
        check((p) => {
          const x = p.param("x", [2, 3, 6], 2);
          const w = p.param("w", [6]);
          return [withTrace(p.b, () => f(new Tensor(x), new Tensor(w)).value)];
        }),
      ).toEqual([]);
    });
  }
});

describe("GPT-2 sample, forward and backward as a whole", () => {
  it("every parameter's gradient matches finite differences on sampled entries", () => {
    const config = { vocab: 11, seq: 8, layers: 2, dim: 8, heads: 2 };
    const forward = traceProgram(buildModel(gpt2, config), config, { batch: 2, seq: 5, kind: "train" });
    const p = new Problem(3);
    for (const param of forward.params) p.feeds.params.set(param.name, p.uniform(numel(param.shape), 0.8));
    const tokens = rng(5);
    const randomTokens = () => Int32Array.from({ length: 10 }, () => Math.floor(tokens() * config.vocab));
    p.feeds.inputs = { tokens: randomTokens(), targets: randomTokens() };
    expect(forward.params.length).toBe(4 + 12 * config.layers);
    expect(gradcheck(forward, p.feeds, 5)).toEqual([]);
  });
});

describe("PaLM sample, forward and backward as a whole", () => {
  it("every parameter's gradient matches finite differences on sampled entries", () => {
    const config = { vocab: 11, seq: 8, layers: 2, dim: 8, heads: 4, kv_heads: 1 };
    const forward = traceProgram(buildModel(palm, config), config, { batch: 2, seq: 5, kind: "train" });
    const p = new Problem(4);
    for (const param of forward.params) p.feeds.params.set(param.name, p.uniform(numel(param.shape), 0.8));
    const tokens = rng(6);
    const randomTokens = () => Int32Array.from({ length: 10 }, () => Math.floor(tokens() * config.vocab));
    p.feeds.inputs = { tokens: randomTokens(), targets: randomTokens() };
    expect(forward.params.length).toBe(2 + 8 * config.layers);
    expect(gradcheck(forward, p.feeds, 5)).toEqual([]);
  });
});

describe("GPT-2 sample with its LM head fused into the loss", () => {
  it("every parameter's gradient matches finite differences on sampled entries", () => {
    const config = { vocab: 11, seq: 8, layers: 1, dim: 8, heads: 2 };
    const traced = traceProgram(buildModel(gpt2, config), config, { batch: 2, seq: 5, kind: "train" });
    const fused = fuseLmHead(traced);
    expect(fused.nodes.filter((n) => n.op === "linear_cross_entropy")).toHaveLength(1);
    const p = new Problem(4);
    for (const param of fused.params) p.feeds.params.set(param.name, p.uniform(numel(param.shape), 0.8));
    const tokens = rng(6);
    const randomTokens = () => Int32Array.from({ length: 10 }, () => Math.floor(tokens() * config.vocab));
    p.feeds.inputs = { tokens: randomTokens(), targets: randomTokens() };
    expect(gradcheck(fused, p.feeds, 5)).toEqual([]);
  });
});

describe("AdamW in the interpreter", () => {
  const hyper = { lr: 0.01, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, t: 3 };
  const p0 = [0.5, -1.25, 2.0, 0.125];
  const g0 = [0.3, -0.7, 1.1, -0.05];
  const m0 = [0.01, -0.02, 0.03, 0.0];
  const v0 = [0.001, 0.004, 0.002, 0.0005];

  /** torch.optim.AdamW's single-tensor step and clip_grad_norm_, written out by hand. */
  function pytorchAdamW(decay: boolean, clip: number): number[][] {
    const norm = Math.sqrt(g0.reduce((s, g) => s + g * g, 0));
    const clipCoef = clip > 0 ? Math.min(1, clip / (norm + 1e-6)) : 1;
    const { lr, beta1, beta2, eps, weightDecay, t } = hyper;
    const p = [...p0],
      m = [...m0],
      v = [...v0];
    for (let i = 0; i < p.length; i++) {
      const grad = g0[i] * clipCoef;
      if (decay) p[i] *= 1 - lr * weightDecay;
      m[i] = m[i] + (grad - m[i]) * (1 - beta1); // exp_avg.lerp_(grad, 1 - beta1)
      v[i] = v[i] * beta2 + (1 - beta2) * grad * grad;
      const stepSize = lr / (1 - beta1 ** t);
      const denom = Math.sqrt(v[i]) / Math.sqrt(1 - beta2 ** t) + eps;
      p[i] -= (stepSize * m[i]) / denom;
    }
    return [p, m, v];
  }

  function interpretAdamW(decay: boolean, clip: number): number[][] {
    const b = new GraphBuilder();
    const p = b.value("param", [], { name: "w", shape: [4] });
    b.params.push({ name: "w", shape: [4], init: { kind: "zeros" }, decay, value: p });
    const g = b.value("input", [], { name: "g", shape: [4], dtype: "f32" });
    const m = b.value("opt_state", [], { name: "opt.m.w", shape: [4] });
    const v = b.value("opt_state", [], { name: "opt.v.w", shape: [4] });
    const norm = clip > 0 ? [b.value("grad_norm", [g])] : [];
    const step = b.add("adamw", [p, g, m, v, ...norm], { decay });
    const feeds: Feeds = {
      params: new Map([["w", Float64Array.from(p0)]]),
      inputs: { g: Float64Array.from(g0) },
      optState: new Map([
        ["opt.m.w", Float64Array.from(m0)],
        ["opt.v.w", Float64Array.from(v0)],
      ]),
      adam: { ...hyper, gradClip: clip },
    };
    const env = interpret(b.build(), feeds);
    expect([...feeds.params.get("w")!]).toEqual(p0); // the step writes new values, not into the feeds
    return step.outputs.map((out) => [...env.get(out.id)!]);
  }

  // Printed by /usr/bin/python3 with torch 2 in float64: torch.optim.AdamW(lr=0.01, betas=(0.9, 0.95),
  // eps=1e-8, foreach=False) at step 3 from the m0, v0 above, after clip_grad_norm_ where clipping is on.
  const torchResults: Record<string, number[][]> = {
    "decay, clipped": [
      [0.4924114248356587, -1.2415089513392283, 1.9886689002081224, 0.12604763991123624],
      [0.02020369693640448, -0.04414195951827712, 0.06808022210014976, -0.0018672828227340797],
      [0.0015776141252139963, 0.0072170102372762016, 0.010337923238988174, 0.0004924337257003888],
    ],
    "no decay, no clipping": [
      [0.4926380159616501, -1.2427101602332473, 1.9923571241750664, 0.12784461077021833],
      [0.039, -0.088, 0.137, -0.005],
      [0.00545, 0.0283, 0.0624, 0.0006],
    ],
  };

  for (const [label, decay, clip] of [
    ["decay, clipped", true, 0.5],
    ["no decay, no clipping", false, 0],
  ] as const) {
    it(`matches PyTorch's formula: ${label}`, () => {
      const got = interpretAdamW(decay, clip);
      const want = pytorchAdamW(decay, clip);
      got.forEach((tensor, k) => tensor.forEach((x, i) => expect(x).toBeCloseTo(want[k][i], 14)));
      got.forEach((tensor, k) => tensor.forEach((x, i) => expect(x).toBeCloseTo(torchResults[label][k][i], 14)));
    });
  }
});

describe("gradient of each data-movement op along any axis matches finite differences", () => {
  for (const [dim, start, length] of [
    [0, 1, 2],
    [1, 0, 3],
    [2, 2, 3],
  ] as const) {
    it(`slice of [3,4,5] along axis ${dim}, [${start}, ${start + length})`, () => {
      expect(check((p) => [p.b.value("slice", [p.param("x", [3, 4, 5])], { dim, start, length })])).toEqual([]);
    });
  }

  it("pad of the last two axes, with a value", () => {
    expect(check((p) => [p.b.value("pad", [p.param("x", [2, 3, 4])], { before: [1, 0], after: [2, 3], value: 0.5 })])).toEqual([]);
  });

  it("pad that crops one axis and pads another", () => {
    expect(check((p) => [p.b.value("pad", [p.param("x", [2, 3, 5])], { before: [1, -2], after: [0, -1], value: 0 })])).toEqual([]);
  });

  for (const [from, to] of [
    [
      [3, 1],
      [2, 3, 4],
    ],
    [
      [1, 4],
      [3, 4],
    ],
    [[5], [2, 3, 5]],
  ] as const) {
    it(`expand [${from}] to [${to}]`, () => {
      expect(check((p) => [p.b.value("expand", [p.param("x", from)], { shape: to })])).toEqual([]);
    });
  }

  it("concat along a middle axis", () => {
    expect(
      check((p) => [p.b.value("concat", [p.param("a", [2, 3, 4]), p.param("b", [2, 1, 4]), p.param("c", [2, 2, 4])], { axis: 1 })]),
    ).toEqual([]);
  });

  it("index_select along axis 1 with repeated and unused indices, of an indices tensor [2,3]", () => {
    expect(
      check((p) => [p.b.value("index_select", [p.param("x", [2, 5, 3]), p.ints("idx", [2, 3], [4, 0, 4, 1, 4, 0])], { dim: 1 })]),
    ).toEqual([]);
  });

  it("gather along axis 0 and axis 1, indices repeated", () => {
    expect(
      check((p) => {
        const x = p.param("x", [4, 3]);
        const rows = p.b.value("gather", [x, p.ints("r", [2, 3], [3, 0, 3, 3, 1, 0])], { dim: 0 });
        const cols = p.b.value("gather", [x, p.ints("c", [4, 2], [2, 2, 0, 1, 1, 1, 2, 0])], { dim: 1 });
        return [rows, cols];
      }),
    ).toEqual([]);
  });
});

describe("a model that moves data along every axis, forward and backward as a whole", () => {
  it("every parameter's gradient matches finite differences on sampled entries", async () => {
    const { default: movementGpt } = await import("../fixtures/models/movement_gpt.ts");
    const config = { vocab: 11, seq: 8, layers: 1, dim: 8, heads: 2 };
    const forward = traceProgram(buildModel(movementGpt, config), config, { batch: 2, seq: 5, kind: "train" });
    const ops = new Set(forward.nodes.map((n) => n.op));
    for (const op of ["slice", "pad", "expand", "index_select", "gather", "concat", "where"] as const) expect(ops).toContain(op);
    const p = new Problem(8);
    for (const param of forward.params) p.feeds.params.set(param.name, p.uniform(numel(param.shape), 0.8));
    const tokens = rng(9);
    const randomTokens = () => Int32Array.from({ length: 10 }, () => Math.floor(tokens() * config.vocab));
    p.feeds.inputs = { tokens: randomTokens(), targets: randomTokens() };
    expect(gradcheck(forward, p.feeds, 5)).toEqual([]);
  });
});

describe("gradient of where and of comparisons matches finite differences", () => {
  // The condition is a comparison of a fixed input: a mask that no parameter moves.
  for (const [cond, a, b] of [
    [
      [2, 3, 4],
      [2, 3, 4],
      [2, 3, 4],
    ],
    [[3, 4], [2, 3, 4], [4]],
    [[2, 3, 1], [4], [2, 3, 4]],
    [[2, 3, 4], [], [3, 1]],
  ] as const) {
    it(`where, condition [${cond}], a [${a}], b [${b}]`, () => {
      expect(
        check((p) => {
          const zero = p.b.value("fill", [], { shape: [], value: 0 });
          const mask = p.b.value("binary", [p.weights("m", cond), zero], { fn: "gt" });
          return [p.b.value("where", [mask, p.param("a", a), p.param("b", b)])];
        }),
      ).toEqual([]);
    });
  }

  it("a comparison passes no gradient: x * (x > 0) differentiates as relu", () => {
    expect(
      check((p) => {
        const x = p.param("x", [3, 5], 2);
        const mask = p.b.value("binary", [x, p.b.value("fill", [], { shape: [], value: 0 })], { fn: "gt" });
        return [p.b.value("binary", [x, mask], { fn: "mul" })];
      }),
    ).toEqual([]);
  });
});
