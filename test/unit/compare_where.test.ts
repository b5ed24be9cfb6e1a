// The DSL's comparisons and where (issue 17): float masks, torch.where's choice with broadcasting,
// maskedFill, and the errors at the model line. Values are worked out by hand as PyTorch defines them;
// gradients are test/unit/gradcheck.test.ts's, kernels test/system/op_kernels.test.ts's.
import { describe, expect, test } from "vitest";
import { GraphBuilder } from "../../ir/builder.ts";
import { interpret } from "../../ir/interpret.ts";
import { autodiff } from "../../ir/passes/autodiff.ts";
import { arange, full, softmax } from "../../src/dsl/functional.ts";
import { Tensor, where } from "../../src/dsl/tensor.ts";
import { TraceError, withTrace } from "../../src/dsl/trace.ts";

/** Runs `fn` on x = [[1, 2, 3, 4], [5, 6, 7, 8]] and returns each result's shape and values. */
function run(fn: (x: Tensor) => Tensor[]): [readonly number[], number[]][] {
  const b = new GraphBuilder();
  const x = b.value("input", [], { name: "x", shape: [2, 4], dtype: "f32" });
  const outs = withTrace(b, () => fn(new Tensor(x)));
  const env = interpret(b.build(), { params: new Map(), inputs: { x: Float64Array.from([1, 2, 3, 4, 5, 6, 7, 8]) } });
  return outs.map((t) => [t.shape, [...env.get(t.value.id)!]]);
}

describe("comparisons and where in the DSL", () => {
  test("comparisons give 0/1 float masks against numbers and broadcast tensors", () => {
    const row = (x: Tensor) => x.narrow(0, 0, 1).reshape(4); // [1, 2, 3, 4]
    const got = run((x) => [x.gt(4), x.le(2), x.eq(row(x).add(4)), x.ne(row(x)), x.lt(x.amax(-1, true)), x.ge(6)]);
    expect(got.map(([, v]) => v)).toEqual([
      [0, 0, 0, 0, 1, 1, 1, 1],
      [1, 1, 0, 0, 0, 0, 0, 0],
      [0, 0, 0, 0, 1, 1, 1, 1],
      [0, 0, 0, 0, 1, 1, 1, 1],
      [1, 1, 1, 0, 1, 1, 1, 0],
      [0, 0, 0, 0, 0, 1, 1, 1],
    ]);
    expect(got.every(([shape]) => shape.join() === "2,4")).toBe(true);
  });

  test("where picks a or b by the mask; numbers and smaller operands broadcast", () => {
    const got = run((x) => [
      where(x.gt(4), x, 0),
      where(x.amax(-1, true).gt(5), 1, x),
      x.where(x.le(2), full([4], -1)),
      where(full([4], 1).sub(x.narrow(0, 0, 1).reshape(4).gt(2)), 10, 20),
    ]);
    expect(got).toEqual([
      [
        [2, 4],
        [0, 0, 0, 0, 5, 6, 7, 8],
      ],
      [
        [2, 4],
        [1, 2, 3, 4, 1, 1, 1, 1],
      ],
      [
        [2, 4],
        [1, 2, -1, -1, -1, -1, -1, -1],
      ],
      [[4], [10, 10, 20, 20]],
    ]);
  });

  test("maskedFill with -Infinity before a softmax masks those entries out", () => {
    const [[, p]] = run((x) => [softmax(x.maskedFill(x.ge(3).mul(x.le(6)), -Infinity))]);
    // Row 0 keeps 1, 2; row 1 keeps 7, 8: each a softmax over two entries one apart.
    const a = 1 / (1 + Math.E);
    [a, 1 - a, 0, 0, 0, 0, a, 1 - a].forEach((want, i) => expect(p[i]).toBeCloseTo(want, 12));
  });

  test("no gradient flows through a comparison; where's flows to both values", () => {
    const b = new GraphBuilder();
    const x = b.value("param", [], { name: "x", shape: [4] });
    b.params.push({ name: "x", shape: [4], init: { kind: "zeros" }, decay: false, value: x });
    const loss = withTrace(b, () => where(new Tensor(x).gt(0), new Tensor(x).mul(3), new Tensor(x).neg()).sum(-1).value);
    b.named.loss = loss;
    const g = autodiff(b.build());
    const env = interpret(g, { params: new Map([["x", Float64Array.from([-2, -1, 1, 2])]]), inputs: {} });
    expect([...env.get(g.grads.x.id)!]).toEqual([-1, -1, 3, 3]);
  });

  test("what does not broadcast, or a non-float mask, is an error at the model line", () => {
    expect(() => run((x) => [where(x.gt(0), x, full([3], 0))])).toThrow(TraceError);
    expect(() => run((x) => [where(x.gt(0), x, full([3], 0))])).toThrow(/where: condition \[2,4\], \[2,4\] and \[3\] do not broadcast/);
    expect(() => run((x) => [x.gt(full([3], 0))])).toThrow(/gt: shapes \[2,4\] and \[3\] do not match/);
    expect(() => run((x) => [where(arange(4), x, 0)])).toThrow(
      /where: condition \(a mask: use a comparison, or 0 and 1\) must be f32, got i32/,
    );
  });
});
