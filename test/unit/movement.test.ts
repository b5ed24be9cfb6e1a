// The DSL's data movement along any axis (issue 17): the shapes and values its functions and methods
// give on a small input, worked out by hand as PyTorch defines them, and the errors at the model line
// for what does not fit. Gradients are test/unit/gradcheck.test.ts's; kernels test/system/op_kernels.test.ts's.
import { describe, expect, test } from "vitest";
import { GraphBuilder } from "../../ir/builder.ts";
import { interpret } from "../../ir/interpret.ts";
import type { Shape } from "../../ir/types.ts";
import { full } from "../../src/dsl/functional.ts";
import { broadcastTo, cat, concat, gather, indexSelect, narrow, pad, stack } from "../../src/dsl/movement.ts";
import { Tensor } from "../../src/dsl/tensor.ts";
import { TraceError, withTrace } from "../../src/dsl/trace.ts";

/** x = [[1, 2, 3, 4], [5, 6, 7, 8]]; `ints` are fed as i32 inputs. Returns each result's shape and values. */
function run(fn: (x: Tensor, ints: Tensor[]) => Tensor[], ints: [Shape, number[]][] = []): [Shape, number[]][] {
  const b = new GraphBuilder();
  const x = b.value("input", [], { name: "x", shape: [2, 4], dtype: "f32" });
  const feeds = { x: Float64Array.from([1, 2, 3, 4, 5, 6, 7, 8]) } as Record<string, Float64Array | Int32Array>;
  const intValues = ints.map(([shape, data], i) => {
    feeds[`i${i}`] = Int32Array.from(data);
    return new Tensor(b.value("input", [], { name: `i${i}`, shape, dtype: "i32" }));
  });
  const outs = withTrace(b, () => fn(new Tensor(x), intValues));
  const env = interpret(b.build(), { params: new Map(), inputs: feeds });
  return outs.map((t) => [t.shape, [...env.get(t.value.id)!]]);
}

describe("data movement in the DSL", () => {
  test("narrow and slice pick a range of any axis; negative bounds count from the end", () => {
    expect(run((x) => [x.narrow(1, 1, 2), narrow(x, 0, -1, 1), x.slice(-1, -2), x.slice(1, 1, 100)])).toEqual([
      [
        [2, 2],
        [2, 3, 6, 7],
      ],
      [
        [1, 4],
        [5, 6, 7, 8],
      ],
      [
        [2, 2],
        [3, 4, 7, 8],
      ],
      [
        [2, 3],
        [2, 3, 4, 6, 7, 8],
      ],
    ]);
  });

  test("expand and broadcastTo repeat axes of 1; -1 keeps an axis", () => {
    expect(run((x) => [x.narrow(0, 1, 1).expand(3, -1), broadcastTo(x.unsqueeze(-1), [2, 4, 2]).narrow(1, 0, 2)])).toEqual([
      [
        [3, 4],
        [5, 6, 7, 8, 5, 6, 7, 8, 5, 6, 7, 8],
      ],
      [
        [2, 2, 2],
        [1, 1, 2, 2, 5, 5, 6, 6],
      ],
    ]);
  });

  test("concat joins along any axis, stack along a new one", () => {
    expect(run((x) => [concat([x, x.narrow(1, 0, 1)], 1), cat([x.narrow(0, 1, 1), x], 0), stack([x, x.mul(10)], 1)])).toEqual([
      [
        [2, 5],
        [1, 2, 3, 4, 1, 5, 6, 7, 8, 5],
      ],
      [
        [3, 4],
        [5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8],
      ],
      [
        [2, 2, 4],
        [1, 2, 3, 4, 10, 20, 30, 40, 5, 6, 7, 8, 50, 60, 70, 80],
      ],
    ]);
  });

  test("pad takes PyTorch's pairs from the last axis; negative amounts crop", () => {
    expect(run((x) => [pad(x, [1, 0], -1), pad(x, [0, 0, 1, 0]), pad(x, [-1, -1])])).toEqual([
      [
        [2, 5],
        [-1, 1, 2, 3, 4, -1, 5, 6, 7, 8],
      ],
      [
        [3, 4],
        [0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8],
      ],
      [
        [2, 2],
        [2, 3, 6, 7],
      ],
    ]);
  });

  test("indexSelect picks slices by i32 indices of any shape; gather picks elements", () => {
    const got = run(
      (x, [sel, idx, rows]) => [indexSelect(x, 1, sel), gather(x, 1, idx), x.indexSelect(0, rows)],
      [
        [[3], [3, 0, 3]],
        [
          [2, 2],
          [3, 0, 1, 1],
        ],
        [
          [2, 1],
          [1, 0],
        ],
      ],
    );
    expect(got).toEqual([
      [
        [2, 3],
        [4, 1, 4, 8, 5, 8],
      ],
      [
        [2, 2],
        [4, 1, 6, 6],
      ],
      [
        [2, 1, 4],
        [5, 6, 7, 8, 1, 2, 3, 4],
      ],
    ]);
  });

  test("i32 tensors move as f32 ones do, and stay i32", () => {
    const dtypes: string[] = [];
    const got = run(
      (_x, [i]) => {
        const outs = [stack([pad(i, [1, 0], 9), pad(i.narrow(0, 0, 3), [0, 2])]), i.unsqueeze(0).expand(2, -1)];
        dtypes.push(...outs.map((t) => t.dtype));
        return outs;
      },
      [[[4], [1, 2, 3, 4]]],
    );
    expect(got).toEqual([
      [
        [2, 5],
        [9, 1, 2, 3, 4, 1, 2, 3, 0, 0],
      ],
      [
        [2, 4],
        [1, 2, 3, 4, 1, 2, 3, 4],
      ],
    ]);
    expect(dtypes).toEqual(["i32", "i32"]);
  });

  test("what does not fit is an error at the model line", () => {
    const fails = (fn: (x: Tensor) => Tensor, message: RegExp) => {
      expect(() => run((x) => [fn(x)])).toThrow(TraceError);
      expect(() => run((x) => [fn(x)])).toThrow(message);
    };
    fails((x) => x.narrow(1, 3, 2), /narrow: start 3 and length 2 do not fit axis 1 of \[2,4\]/);
    fails((x) => x.slice(1, 3, 1), /slice: \[3, 1\) of axis 1 \(length 4\) is empty/);
    fails((x) => x.narrow(2, 0, 1), /axis 2 is out of range for rank 2/);
    fails((x) => concat([x, full([3, 4], 0)], 1), /concat: shapes \[2,4\], \[3,4\] differ outside axis 1/);
    fails((x) => stack([x, x.narrow(1, 0, 2)]), /stack: shapes \[2,4\] and \[2,2\] differ/);
    fails((x) => x.expand(3, 4), /expand: \[2,4\] does not broadcast to \[3,4\]/);
    fails((x) => x.expand(-1, 2, 4), /-1 is not allowed for the new leading axis 0/);
    fails((x) => x.expand(0, 2, 4), /expand: sizes \[0,2,4\] must be positive integers/);
    fails((x) => pad(x, [1]), /pad: 1 amounts for a tensor of rank 2/);
    fails((x) => pad(x, [-2, -2]), /pad: cropping axis 1 of \[2,4\] by 2 and 2 leaves nothing/);
    fails((x) => x.gather(1, x), /gather: the index must be i32, got f32/);
    fails((x) => x.indexSelect(0, x), /index_select: the indices must be i32, got f32/);
  });

  test("gather's index must match x outside the gathered axis", () => {
    expect(() =>
      run(
        (x, [i]) => [x.gather(1, i)],
        [
          [
            [3, 2],
            [0, 0, 0, 0, 0, 0],
          ],
        ],
      ),
    ).toThrow(/gather: the index \[3,2\] must have the shape of x \[2,4\] except along axis 1/);
  });
});
