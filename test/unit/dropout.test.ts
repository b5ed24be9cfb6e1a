// Dropout (issue 17): its counter-based mask (ir/interpret_ops.ts's dropoutKeep, the function the kernels
// share through kernel_math.h, checked against them by test/system/op_kernels.test.ts) drops about p of the
// elements, independently of the step, seed and position; the DSL's dropout and Dropout are the identity
// for p = 0 and in the inference program, and give each call its own masks. Its gradient is
// test/unit/gradcheck.test.ts's.
import { describe, expect, test } from "vitest";
import { GraphBuilder } from "../../ir/builder.ts";
import { interpret } from "../../ir/interpret.ts";
import { dropoutKeep } from "../../ir/interpret_ops.ts";
import { buildModel, traceProgram } from "../../src/driver/trace_program.ts";
import { dropout } from "../../src/dsl/functional.ts";
import type { ModelConfig, ModelDefinition } from "../../src/dsl/model.ts";
import { Dropout } from "../../src/dsl/nn.ts";
import { Tensor } from "../../src/dsl/tensor.ts";
import { TraceError, currentTrace, withTrace } from "../../src/dsl/trace.ts";
import { loadModel } from "../../src/load/load_model.ts";

const N = 200_000;

/** How many of N elements dropoutKeep drops. */
function dropped(seed: number, step: number, p: number, from = 0): number {
  let n = 0;
  for (let i = from; i < from + N; i++) if (!dropoutKeep(seed, step, i, p)) n++;
  return n;
}

describe("dropout's mask", () => {
  test.each([0.1, 0.5, 0.9])("drops a fraction p = %s, within 4 standard deviations, at any seed, step and position", (p) => {
    const sigma = Math.sqrt(N * p * (1 - p));
    for (const [seed, step, from] of [
      [0, 1, 0],
      [7, 1000, 0],
      [4294967295, 3, 2 ** 32 - N / 2], // across the index's 32-bit boundary
    ])
      expect(Math.abs(dropped(seed, step, p, from) - N * p)).toBeLessThan(4 * sigma);
  });

  test("masks of different steps, seeds or neighbouring elements are independent; one (seed, step) is one mask", () => {
    const p = 0.5;
    const agree = (a: (i: number) => boolean, b: (i: number) => boolean) => {
      let n = 0;
      for (let i = 0; i < N; i++) if (a(i) === b(i)) n++;
      return n / N;
    };
    const sigma = 0.5 / Math.sqrt(N);
    const base = (i: number) => dropoutKeep(1, 1, i, p);
    for (const other of [
      (i: number) => dropoutKeep(1, 2, i, p),
      (i: number) => dropoutKeep(2, 1, i, p),
      (i: number) => dropoutKeep(1, 1, i + 1, p),
    ])
      expect(Math.abs(agree(base, other) - 0.5)).toBeLessThan(4 * sigma);
    expect(agree(base, (i) => dropoutKeep(1, 1, i, p))).toBe(1);
  });

  test("p = 0 keeps everything; kept elements are scaled by 1 / (1 - p)", () => {
    expect(dropped(3, 1, 0)).toBe(0);
    const b = new GraphBuilder();
    const x = b.value("input", [], { name: "x", shape: [1000], dtype: "f32" });
    const y = b.value("dropout", [x], { p: 0.25, seed: 9 });
    const data = Float64Array.from({ length: 1000 }, (_, i) => i + 1);
    const out = interpret(b.build(), { params: new Map(), inputs: { x: data } }).get(y.id)!;
    out.forEach((v, i) => expect(v).toBe(dropoutKeep(9, 1, i, 0.25) ? (i + 1) / 0.75 : 0));
  });
});

describe("dropout in the DSL", () => {
  /** The ops `fn` traces on a [4, 8] input, in the training program or the inference one. */
  function ops(fn: (x: Tensor) => Tensor, training = true) {
    const b = new GraphBuilder();
    const x = new Tensor(b.value("input", [], { name: "x", shape: [4, 8], dtype: "f32" }));
    const y = withTrace(b, () => {
      currentTrace().training = training;
      return fn(x);
    });
    return { same: y === x, nodes: b.build().nodes.filter((n) => n.op !== "input") };
  }

  test("each call draws its own masks; a module called twice draws two", () => {
    const drop = new Dropout(0.1);
    const { nodes } = ops((x) => dropout(drop.forward(drop.forward(x)), 0.2));
    expect(nodes.map((n) => [n.op, n.attrs])).toEqual([
      ["dropout", { p: 0.1, seed: 0 }],
      ["dropout", { p: 0.1, seed: 1 }],
      ["dropout", { p: 0.2, seed: 2 }],
    ]);
  });

  test("the identity for p = 0 and in the inference program", () => {
    expect(ops((x) => dropout(x, 0))).toEqual({ same: true, nodes: [] });
    expect(ops((x) => new Dropout(0.5).forward(x), false)).toEqual({ same: true, nodes: [] });
  });

  test("a model's training program has its dropout; its inference program (stow generate) has none", async () => {
    const { module } = await loadModel("test/fixtures/models/dropout_gpt.ts");
    const config = module.presets.tiny as ModelConfig;
    const count = (kind: "train" | "infer") =>
      traceProgram(buildModel(module as ModelDefinition, config), config, { batch: 2, seq: 8, kind }).nodes.filter(
        (n) => n.op === "dropout",
      ).length;
    // After the embeddings, and twice in each of the two blocks.
    expect([count("train"), count("infer")]).toEqual([5, 0]);
  });

  test("p outside [0, 1) is an error at the model line", () => {
    expect(() => ops((x) => dropout(x, 1))).toThrow(TraceError);
    expect(() => ops((x) => dropout(x, -0.1))).toThrow(/dropout: the probability p must be in \[0, 1\), got -0.1/);
    expect(() => new Dropout(1.5)).toThrow(/Dropout: the probability p must be in \[0, 1\), got 1.5/);
  });
});
