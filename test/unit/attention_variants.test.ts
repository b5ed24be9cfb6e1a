// The DSL's scaledDotProductAttention (issue 17): non-causal, masked and cross-attention through the one
// fused attention op. Its values, through the float64 interpreter, against a naive softmax(q kᵀ / sqrt(D)
// + mask) v written here from PyTorch's documented semantics (is_causal keeps keys j <= i, counted from
// the start of both); the IR it makes (causal attention stays the node causalAttention makes); and its
// errors at the model line. Gradients are test/unit/gradcheck.test.ts's, kernels
// test/system/op_kernels.test.ts's.
import { describe, expect, test } from "vitest";
import { GraphBuilder } from "../../ir/builder.ts";
import { interpret } from "../../ir/interpret.ts";
import type { Shape } from "../../ir/types.ts";
import { numel } from "../../ir/types.ts";
import { causalAttention, scaledDotProductAttention } from "../../src/dsl/functional.ts";
import { Tensor } from "../../src/dsl/tensor.ts";
import { TraceError, withTrace } from "../../src/dsl/trace.ts";
import { mulberry32 } from "../../src/util/random.ts";

interface Inputs {
  q: Shape;
  kv: Shape;
  mask?: number[]; // row-major, of maskShape (default [Tq, Tk])
  maskShape?: Shape;
}

/** Random q, k, v (and the given mask) as inputs; traces `fn` on them and interprets the result. */
function run(shapes: Inputs, fn: (q: Tensor, k: Tensor, v: Tensor, mask: Tensor | undefined, b: GraphBuilder) => Tensor) {
  const random = mulberry32(7);
  const data = (shape: Shape) => Float64Array.from({ length: numel(shape) }, () => 2 * random() - 1);
  const b = new GraphBuilder();
  const feeds: Record<string, Float64Array> = { q: data(shapes.q), k: data(shapes.kv), v: data(shapes.kv) };
  const input = (name: string, shape: Shape) => new Tensor(b.value("input", [], { name, shape, dtype: "f32" }));
  const [Tq, Tk] = [shapes.q[shapes.q.length - 2], shapes.kv[shapes.kv.length - 2]];
  if (shapes.mask) feeds.mask = Float64Array.from(shapes.mask);
  const maskShape = shapes.maskShape ?? [Tq, Tk];
  const out = withTrace(b, () =>
    fn(input("q", shapes.q), input("k", shapes.kv), input("v", shapes.kv), shapes.mask ? input("mask", maskShape) : undefined, b),
  );
  const g = b.build();
  const y = interpret(g, { params: new Map(), inputs: feeds }).get(out.value.id)! as Float64Array;
  return { y, feeds, g };
}

/**
 * The entry of a mask of shape `mask` that score [...index] reads, by broadcasting's rule: align the shapes
 * from the right, and read index 0 along every axis of size 1.
 */
function broadcastEntry(mask: Shape, index: number[]): number {
  const aligned = index.slice(index.length - mask.length);
  return aligned.reduce((at, x, a) => at * mask[a] + (mask[a] === 1 ? 0 : x), 0);
}

/** q's leading (slab) axes' indices of slab s. */
function slabIndex(q: Shape, s: number): number[] {
  const axes = q.slice(0, -2);
  return axes.map((_, a) => Math.floor(s / numel(axes.slice(a + 1))) % axes[a]);
}

/** softmax(q kᵀ / sqrt(D) + mask) v per slab, naively; K/V slab of query slab s is s / group. */
function naive(feeds: Record<string, Float64Array>, q: Shape, kv: Shape, causal: boolean, maskShape?: Shape): number[] {
  const [Tq, D] = q.slice(-2);
  const Tk = kv[kv.length - 2];
  const slabs = numel(q) / (Tq * D);
  const group = slabs / (numel(kv) / (Tk * D));
  const out: number[] = [];
  for (let s = 0; s < slabs; s++)
    for (let i = 0; i < Tq; i++) {
      const scores = Array.from({ length: Tk }, (_, j) => {
        if (causal && j > i) return -Infinity;
        let dot = 0;
        for (let d = 0; d < D; d++) dot += feeds.q[(s * Tq + i) * D + d] * feeds.k[(Math.floor(s / group) * Tk + j) * D + d];
        const m = maskShape ?? [Tq, Tk];
        return dot / Math.sqrt(D) + (feeds.mask ? feeds.mask[broadcastEntry(m, [...slabIndex(q, s), i, j])] : 0);
      });
      const max = Math.max(...scores);
      const weights = scores.map((x) => (max === -Infinity ? 0 : Math.exp(x - max)));
      const total = weights.reduce((a, w) => a + w, 0);
      for (let d = 0; d < D; d++) {
        let acc = 0;
        for (let j = 0; j < Tk; j++) if (weights[j] > 0) acc += (weights[j] / total) * feeds.v[(Math.floor(s / group) * Tk + j) * D + d];
        out.push(acc);
      }
    }
  return out;
}

function expectClose(got: Float64Array, want: number[]) {
  expect(got.length).toBe(want.length);
  got.forEach((x, i) => expect(Math.abs(x - want[i]), `element ${i}: ${x} vs ${want[i]}`).toBeLessThan(1e-12));
}

describe("scaledDotProductAttention", () => {
  test("is not causal by default: every query sees every key", () => {
    const shapes = { q: [2, 2, 4, 3], kv: [2, 2, 4, 3] };
    const { y, feeds } = run(shapes, (q, k, v) => scaledDotProductAttention(q, k, v));
    expectClose(y, naive(feeds, shapes.q, shapes.kv, false));
  });

  test("causal: true is causalAttention's node, with the same values", () => {
    const shapes = { q: [1, 2, 5, 4], kv: [1, 1, 5, 4] };
    const a = run(shapes, (q, k, v) => scaledDotProductAttention(q, k, v, { causal: true }));
    const b = run(shapes, (q, k, v) => causalAttention(q, k, v));
    const attention = (g: typeof a.g) => g.nodes.find((n) => n.op === "attention")!;
    expect(attention(a.g).attrs).toEqual({});
    expect(attention(a.g).attrs).toEqual(attention(b.g).attrs);
    expect([...a.y]).toEqual([...b.y]);
    expectClose(a.y, naive(a.feeds, shapes.q, shapes.kv, true));
  });

  test("cross-attention: 3 queries against 6 keys with grouped heads, and causal with more queries than keys", () => {
    const cross = { q: [2, 4, 3, 4], kv: [2, 2, 6, 4] };
    const a = run(cross, (q, k, v) => scaledDotProductAttention(q, k, v));
    expect(a.g.nodes.find((n) => n.op === "attention")!.attrs).toEqual({ causal: false });
    expectClose(a.y, naive(a.feeds, cross.q, cross.kv, false));
    const longer = { q: [1, 2, 5, 4], kv: [1, 2, 3, 4] };
    const b = run(longer, (q, k, v) => scaledDotProductAttention(q, k, v, { causal: true }));
    expectClose(b.y, naive(b.feeds, longer.q, longer.kv, true));
  });

  test("an additive mask: -Infinity hides a key, a finite entry biases it, a row hiding every key gives zeros", () => {
    const mask = [0, -Infinity, 0.5, 0, /**/ -Infinity, -Infinity, -Infinity, -Infinity, /**/ 1, 0, -2, -Infinity];
    const shapes = { q: [1, 2, 3, 4], kv: [1, 2, 4, 4], mask };
    const { y, feeds } = run(shapes, (q, k, v, m) => scaledDotProductAttention(q, k, v, { mask: m }));
    expectClose(y, naive(feeds, shapes.q, shapes.kv, false));
    expect([...y.subarray(4, 8)]).toEqual([0, 0, 0, 0]); // slab 0, query 1
    // Causal and masked together: query 0 sees key 0 alone.
    const causal = run(shapes, (q, k, v, m) => scaledDotProductAttention(q, k, v, { mask: m, causal: true }));
    expectClose(causal.y, naive(causal.feeds, shapes.q, shapes.kv, true));
  });

  // Broadcast as PyTorch's attn_mask: per example (padding), per head, both, and one row for every query.
  for (const [q, kv, maskShape] of [
    [
      [2, 3, 3, 4],
      [2, 3, 4, 4],
      [2, 1, 3, 4],
    ],
    [
      [2, 3, 3, 4],
      [2, 1, 4, 4],
      [2, 1, 1, 4],
    ],
    [
      [2, 3, 3, 4],
      [2, 3, 4, 4],
      [1, 3, 3, 4],
    ],
    [
      [2, 3, 3, 4],
      [2, 3, 4, 4],
      [3, 3, 4],
    ],
    [
      [2, 3, 3, 4],
      [2, 3, 4, 4],
      [2, 3, 3, 4],
    ],
    [
      [3, 2, 4],
      [3, 5, 4],
      [3, 1, 5],
    ],
  ] as const) {
    test(`a mask [${maskShape}] broadcast over q [${q}] and k, v [${kv}]`, () => {
      const random = mulberry32(numel(maskShape));
      const mask = Array.from({ length: numel(maskShape) }, () => (random() < 0.25 ? -Infinity : 2 * random() - 1));
      const shapes = { q: [...q], kv: [...kv], mask, maskShape: [...maskShape] };
      const { y, feeds } = run(shapes, (q, k, v, m) => scaledDotProductAttention(q, k, v, { mask: m }));
      expectClose(y, naive(feeds, shapes.q, shapes.kv, false, shapes.maskShape));
    });
  }

  test("a mask that does not broadcast is a shape error at the model line; one from a parameter is a learned bias", () => {
    const shapes = { q: [2, 1, 3, 4], kv: [2, 1, 4, 4], mask: Array(12).fill(0) };
    expect(() => run(shapes, (q, k, v, m) => scaledDotProductAttention(q, k, v, { mask: m!.reshape(4, 3) }))).toThrow(
      /shape error: attention: the mask \[4,3\] does not broadcast to the scores \[2,1,3,4\]: it must be \[2 or 1, 1 or 1, 3 or 1, 4\]/,
    );
    const perExample = () => run(shapes, (q, k, v, m) => scaledDotProductAttention(q, k, v, { mask: m!.reshape(3, 1, 1, 4) }));
    expect(perExample).toThrow(TraceError);
    expect(perExample).toThrow(/the mask \[3,1,1,4\] does not broadcast/);
    // Two batch axes: the mask must have both or neither (the kernels see one batch axis).
    const partly = { q: [2, 3, 2, 3, 4], kv: [2, 3, 2, 4, 4], mask: Array(24).fill(0), maskShape: [2, 1, 1, 3, 4] };
    expect(() => run(partly, (q, k, v, m) => scaledDotProductAttention(q, k, v, { mask: m }))).toThrow(
      /the mask \[2,1,1,3,4\] broadcasts over some of the batch axes \[2,3\] of q but not all of them/,
    );
    const b = new GraphBuilder();
    const input = (name: string, shape: Shape) => new Tensor(b.value("input", [], { name, shape, dtype: "f32" }));
    const bias = new Tensor(b.value("param", [], { name: "bias", shape: [3, 4] }));
    withTrace(b, () => scaledDotProductAttention(input("q", shapes.q), input("k", shapes.kv), input("v", shapes.kv), { mask: bias }));
    expect(b.build().nodes.find((n) => n.op === "attention")!.inputs[3].producer.op).toBe("param");
  });

  test("k and v of another head width than q are a shape error", () => {
    expect(() => run({ q: [1, 1, 3, 4], kv: [1, 1, 3, 5] }, (q, k, v) => scaledDotProductAttention(q, k, v))).toThrow(
      /must match, except that k and v may have fewer heads/,
    );
  });
});
