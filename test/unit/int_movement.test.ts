// Data movement on int32 tensors (issue 17): transpose, split and concat keep their input's dtype, in the
// registry's shape rules and in the reference interpreter, and a concat of mixed dtypes is a shape error
// at the model line. test/system/int_movement.test.ts trains a model that uses them; the kernels are
// checked on i32 by test/system/op_kernels.test.ts.
import { describe, expect, test } from "vitest";
import { GraphBuilder } from "../../ir/builder.ts";
import { interpret } from "../../ir/interpret.ts";
import { ShapeError } from "../../ir/ops.ts";
import type { Value } from "../../ir/types.ts";
import { loadModel } from "../../src/load/load_model.ts";
import { buildModel, traceProgram } from "../../src/driver/trace_program.ts";
import { TraceError, emit, withTrace } from "../../src/dsl/trace.ts";
import type { ModelConfig, ModelDefinition } from "../../src/dsl/model.ts";

describe("int32 through the data-movement ops", () => {
  test("the interpreter keeps i32 and moves the right elements", () => {
    const b = new GraphBuilder();
    const iota = b.value("iota", [], { n: 6 });
    const m = b.value("reshape", [iota], { shape: [2, 3] });
    const t = b.value("transpose", [m], { perm: [1, 0] });
    const [s0, s1] = b.add("split", [m], { sizes: [1, 2] }).outputs;
    const c = b.value("concat", [s1, s0]);
    for (const v of [t, s0, s1, c]) expect(v.dtype).toBe("i32");
    const env = interpret(b.build(), { params: new Map(), inputs: {} });
    const got = (v: Value) => {
      const x = env.get(v.id)!;
      expect(x).toBeInstanceOf(Int32Array);
      return [...x];
    };
    // [[0, 1, 2], [3, 4, 5]]
    expect(got(t)).toEqual([0, 3, 1, 4, 2, 5]);
    expect(got(s0)).toEqual([0, 3]);
    expect(got(s1)).toEqual([1, 2, 4, 5]);
    expect(got(c)).toEqual([1, 2, 0, 4, 5, 3]);
  });

  test("concat of an i32 and an f32 tensor is a shape error", () => {
    const b = new GraphBuilder();
    const ints = b.value("iota", [], { n: 3 });
    const floats = b.value("fill", [], { shape: [3], value: 1 });
    expect(() => b.value("concat", [floats, ints])).toThrow(ShapeError);
    expect(() => b.value("concat", [floats, ints])).toThrow(/concat: the inputs must have one dtype, got f32 and i32/);
  });

  test("traced from the DSL, the mixed concat is reported at the line that made it", () => {
    let error: unknown;
    withTrace(new GraphBuilder(), () => {
      const [ints] = emit("iota", [], { n: 3 });
      const [floats] = emit("fill", [], { shape: [3], value: 1 });
      try {
        emit("concat", [ints, floats]); // this line
      } catch (e) {
        error = e;
      }
    });
    expect(error).toBeInstanceOf(TraceError);
    expect((error as TraceError).message).toMatch(/shape error: concat: the inputs must have one dtype, got i32 and f32/);
    expect((error as TraceError).loc?.file).toMatch(/test\/unit\/int_movement\.test\.ts$/);
  });

  test("a model moving int positions traces with every moved int labelled i32", async () => {
    const { module } = await loadModel("test/fixtures/models/int_movement.ts");
    const config = module.presets[module.defaultPreset] as ModelConfig;
    const g = traceProgram(buildModel(module as ModelDefinition, config), config, { batch: 2, seq: 8, kind: "train" });
    const moved = g.nodes.filter((n) => n.op === "transpose" || n.op === "split");
    expect(moved.map((n) => n.op)).toEqual(["transpose", "split", "transpose"]);
    for (const n of moved) for (const v of n.outputs) expect(v.dtype).toBe("i32");
    // Each embedding of positions reads i32 indices.
    const embeddings = g.nodes.filter((n) => n.op === "embedding");
    expect(embeddings.map((n) => n.inputs[1].dtype)).toEqual(["i32", "i32", "i32", "i32"]);
  });
});
