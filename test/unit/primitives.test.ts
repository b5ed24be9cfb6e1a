// The DSL's elementwise math and last-axis reductions (issue 17): the shapes its methods give, the
// errors it raises for what it does not support, and the reference semantics of the composites and of
// max's tie rule. Gradients are test/unit/gradcheck.test.ts's; kernels test/system/op_kernels.test.ts's.
import { describe, expect, test } from "vitest";
import { GraphBuilder } from "../../ir/builder.ts";
import { interpret } from "../../ir/interpret.ts";
import { full, logSoftmax, softmax } from "../../src/dsl/functional.ts";
import { Tensor } from "../../src/dsl/tensor.ts";
import { TraceError, withTrace } from "../../src/dsl/trace.ts";

/** Runs `fn` on a fixed [2, 4] input and returns the interpreted values of the tensors it returns. */
function run(fn: (x: Tensor) => Tensor[], data = [1, 2, 3, 4, -1, 0.5, 7, 7]): number[][] {
  const b = new GraphBuilder();
  const x = b.value("input", [], { name: "x", shape: [2, 4], dtype: "f32" });
  const outs = withTrace(b, () => fn(new Tensor(x)));
  const env = interpret(b.build(), { params: new Map(), inputs: { x: Float64Array.from(data) } });
  return outs.map((t) => [...env.get(t.value.id)!]);
}

describe("elementwise math and reductions in the DSL", () => {
  test("reductions keep or drop the last axis as keepdim says", () => {
    const shapes = run((x) => {
      const got = [x.sum(-1), x.mean(1, true), x.amax(-1, true)];
      expect(got.map((t) => t.shape)).toEqual([[2], [2, 1], [2, 1]]);
      return got;
    });
    expect(shapes).toEqual([
      [10, 13.5],
      [2.5, 13.5 / 4],
      [4, 7],
    ]);
  });

  test("a reduction over another axis asks for a transpose", () => {
    expect(() => run((x) => [x.sum(0)])).toThrow(TraceError);
    expect(() => run((x) => [x.amax(0)])).toThrow(/transpose axis 0 to the end/);
    expect(() => run((x) => [softmax(x, 0)])).toThrow(/only the last axis/);
  });

  test("numbers and keepdim results broadcast; other shapes are errors at the model line", () => {
    const [y] = run((x) => [x.sub(x.amax(-1, true)).div(2).add(1).maximum(0.5).pow(2)]);
    expect(y).toEqual([0.25, 0.25, 0.25, 1, 0.25, 0.25, 1, 1]);
    expect(() => run((x) => [x.sub(full([2], 1))])).toThrow(/do not match/);
    expect(() => run((x) => [x.mul(full([4, 1], 1))])).toThrow(/do not match/);
  });

  test("softmax rows sum to 1, logSoftmax is its log, and stay finite for large logits", () => {
    const [p, lp] = run((x) => [softmax(x.mul(100)), logSoftmax(x.mul(100))]);
    for (const r of [0, 1]) expect(p.slice(4 * r, 4 * r + 4).reduce((s, v) => s + v, 0)).toBeCloseTo(1, 12);
    expect(p.every(Number.isFinite) && lp.every(Number.isFinite)).toBe(true);
    lp.forEach((v, i) => expect(Math.exp(v)).toBeCloseTo(p[i], 12));
    // The tied maxima of row 1 (7, 7) share its mass.
    expect(p[6]).toBeCloseTo(0.5, 12);
  });

  test("amax's gradient splits evenly among tied maxima, as torch.amax", () => {
    const b = new GraphBuilder();
    const x = b.value("input", [], { name: "x", shape: [1, 4], dtype: "f32" });
    const y = b.value("reduce", [x], { fn: "max" });
    const dy = b.value("fill", [], { shape: [1, 1], value: 1 });
    const dx = b.value("reduce_bwd", [x, y, dy], { fn: "max" });
    const env = interpret(b.build(), { params: new Map(), inputs: { x: Float64Array.from([3, 1, 3, 2]) } });
    expect([...env.get(dx.id)!]).toEqual([0.5, 0, 0.5, 0]);
  });
});
