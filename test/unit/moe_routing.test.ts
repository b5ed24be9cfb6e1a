// samples/moe.ts's top-k routing, on the float64 interpreter, against selections worked out by hand:
// exactly k experts per token, and the lowest index wins among exactly equal logits.
import { expect, test } from "vitest";
import { GraphBuilder } from "../../ir/builder.ts";
import { interpret } from "../../ir/interpret.ts";
import { topKMask } from "../../samples/moe.ts";
import { Tensor } from "../../src/dsl/tensor.ts";
import { withTrace } from "../../src/dsl/trace.ts";

function mask(rows: number[][], k: number): number[] {
  const b = new GraphBuilder();
  const x = b.value("input", [], { name: "x", shape: [rows.length, rows[0].length], dtype: "f32" });
  const out = withTrace(b, () => topKMask(new Tensor(x), k));
  const env = interpret(b.build(), { params: new Map(), inputs: { x: Float64Array.from(rows.flat()) } });
  return [...env.get(out.value.id)!];
}

test("top 2 of 4: the two largest, the lowest index first among ties", () => {
  expect(
    mask(
      [
        [1, 4, 3, 2],
        [3, 1, 3, 2],
        [5, 5, 5, 5],
        [-1, -3, -2, -1],
      ],
      2,
    ),
  ).toEqual([...[0, 1, 1, 0], ...[1, 0, 1, 0], ...[1, 1, 0, 0], ...[1, 0, 0, 1]]);
});

test("top 1 and top 3 pick exactly k per row, even when every logit ties", () => {
  expect(
    mask(
      [
        [2, 2, 2, 2],
        [0, 7, 7, 1],
      ],
      1,
    ),
  ).toEqual([1, 0, 0, 0, 0, 1, 0, 0]);
  expect(
    mask(
      [
        [2, 2, 2, 2],
        [0, 7, 7, 1],
      ],
      3,
    ),
  ).toEqual([1, 1, 1, 0, 0, 1, 1, 1]);
});
