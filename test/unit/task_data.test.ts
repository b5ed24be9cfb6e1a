// A task model's declared inputs and its data, in process: the declarations each misfit is refused for,
// at the model's line; synthetic batches (no loader) in range and a function of the seed and the step
// alone; a loader's batches written in the step file's layout (runtime/core/step_file.h), read back here
// by offset; a batch with an undeclared input, the wrong dtype or a value out of range refused, and a
// loader that throws reported at its line; and --data refused for such a model.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { type ModelDefinition, float32, int32 } from "../../src/dsl/model.ts";
import { type TaskInput, taskInputs } from "../../src/dsl/task_inputs.ts";
import { TraceError } from "../../src/dsl/trace.ts";
import { prepareTaskData } from "../../src/data/task_data.ts";
import { trainingData } from "../../src/driver/training_data.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "stow-task-data-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const loc = { file: "model.ts", line: 7, col: 1 };
const config = { vocab: 5, seq: 3 };
const definition = (extra: Partial<ModelDefinition>): ModelDefinition => ({
  kind: "stowage-model",
  presets: { tiny: config },
  defaultPreset: "tiny",
  build: () => {
    throw new Error("not built here");
  },
  loc,
  ...extra,
});

describe("declared inputs", () => {
  test("in declaration order, per example", () => {
    const inputs = taskInputs(definition({ inputs: (c) => ({ ids: int32([c.seq], c.vocab), x: float32([2, 2]) }) }), config);
    expect(inputs).toEqual([
      { name: "ids", dtype: "i32", shape: [3], below: 5 },
      { name: "x", dtype: "f32", shape: [2, 2] },
    ]);
  });

  test.each([
    ["no inputs", () => ({}), "the model declares no inputs"],
    ["a name that is not an identifier", () => ({ "a-b": float32([1]) }), 'input name "a-b" is not an identifier'],
    ["a name too long for the step file", () => ({ ["n".repeat(64)]: float32([1]) }), "is not an identifier of at most 63 characters"],
    ["a zero extent", () => ({ x: float32([0]) }), 'input "x" has shape [0]; expected positive integers'],
    ["an integer input without a bound", () => ({ t: { dtype: "i32", shape: [1] } }), 'input "t": below must be a positive int32'],
    ["something else", () => ({ t: [1, 2] }), 'input "t" must be int32(shape, below) or float32(shape)'],
  ])("refused: %s, at the model's line", (_, inputs, message) => {
    const run = () => taskInputs(definition({ inputs: inputs as ModelDefinition["inputs"] }), config);
    expect(run).toThrow(message);
    expect(thrown(run).loc).toEqual(loc);
  });
});

function thrown(run: () => unknown): TraceError {
  try {
    run();
  } catch (e) {
    if (e instanceof TraceError) return e;
    throw e;
  }
  throw new Error("it did not throw");
}

/** The step file's values by offset: a 32-byte header and 80 bytes per input, then steps of inputs. */
function readBack(file: string, inputs: TaskInput[], rows: number): { header: number[]; steps: number[][][] } {
  const bytes = readFileSync(file);
  const header = [
    bytes.readInt32LE(0),
    bytes.readInt32LE(4),
    bytes.readInt32LE(8),
    Number(bytes.readBigInt64LE(16)),
    Number(bytes.readBigInt64LE(24)),
  ];
  let at = 32 + 80 * inputs.length;
  const steps = [];
  for (let s = 0; s < header[3]; s++) {
    const step = [];
    for (const x of inputs) {
      const n = rows * x.shape.reduce((a, b) => a * b, 1);
      step.push(Array.from({ length: n }, (_, k) => (x.dtype === "i32" ? bytes.readInt32LE(at + 4 * k) : bytes.readFloatLE(at + 4 * k))));
      at += 4 * n;
    }
    steps.push(step);
  }
  expect(at).toBe(bytes.length);
  return { header, steps };
}

describe("batches", () => {
  const declared = (c: typeof config) => ({ ids: int32([c.seq], c.vocab), x: float32([2]) });
  const inputs = taskInputs(definition({ inputs: declared }), config)!;
  const request = (name: string, seed = 1) => ({ batch: 4, steps: 3, seed, dir, modelPath: name });

  test("synthetic: integers below their bound, a function of the seed and the step", () => {
    const read = (name: string, seed: number) =>
      readBack(prepareTaskData(definition({ inputs: declared }), config, inputs, request(name, seed)).stepFile, inputs, 4);
    const a = read("a.ts", 1);
    expect(a.header).toEqual([20261203, 1, 2, 3, 4]);
    for (const [ids] of a.steps) for (const v of ids) expect(Number.isInteger(v) && v >= 0 && v < 5).toBe(true);
    expect(new Set(a.steps.flatMap(([ids]) => ids)).size).toBe(5); // 36 draws below 5 reach every value
    expect(read("b.ts", 1).steps).toEqual(a.steps);
    expect(read("c.ts", 2).steps).not.toEqual(a.steps);
    expect(a.steps[1]).not.toEqual(a.steps[0]);
  });

  test("a loader's batches, in order, each input's rows as given", () => {
    const data = (_: unknown, { step, batch }: { step: number; batch: number }) => ({
      ids: Int32Array.from({ length: batch * 3 }, (_, k) => (step + k) % 5),
      x: Float32Array.from({ length: batch * 2 }, (_, k) => step + k / 8),
    });
    const file = prepareTaskData(definition({ inputs: declared, data }), config, inputs, request("d.ts")).stepFile;
    const { steps } = readBack(file, inputs, 4);
    steps.forEach(([ids, x], step) => {
      expect(ids).toEqual(Array.from({ length: 12 }, (_, k) => (step + k) % 5));
      expect(x).toEqual(Array.from({ length: 8 }, (_, k) => step + k / 8));
    });
  });

  test("a batch with an input the model does not declare is refused at the model's line", () => {
    const data = () => ({ ids: new Int32Array(12), x: new Float32Array(8), mask: new Float32Array(4) });
    const run = () => prepareTaskData(definition({ inputs: declared, data }), config, inputs, request("e.ts"));
    expect(run).toThrow('data: step 0: the batch has "mask", which the model does not declare (it declares: ids, x)');
  });

  test("a batch of the wrong dtype is refused at the model's line", () => {
    const data = () => ({ ids: new Int32Array(12), x: new Int32Array(8) });
    const run = () => prepareTaskData(definition({ inputs: declared, data }), config, inputs, request("g.ts"));
    expect(run).toThrow('data: step 0: input "x" must be a Float32Array (float32), got an Int32Array');
    expect(thrown(run).loc).toEqual(loc);
  });

  test("a loader that throws is reported at its own line, with the step", () => {
    const data = (_: unknown, { step }: { step: number }) => {
      if (step === 2) throw new Error("no batch today");
      return { ids: new Int32Array(12), x: new Float32Array(8) };
    };
    const run = () => prepareTaskData(definition({ inputs: declared, data }), config, inputs, request("h.ts"));
    expect(run).toThrow("data: the loader threw at step 2: no batch today");
    expect(thrown(run).loc?.file).toMatch(/task_data\.test\.ts$/); // the throw's line, in this file
  });

  test("an integer out of its range is refused, naming the element", () => {
    const data = () => ({ ids: Int32Array.of(0, 1, 2, 3, 4, 5, 0, 0, 0, 0, 0, 0), x: new Float32Array(8) });
    const run = () => prepareTaskData(definition({ inputs: declared, data }), config, inputs, request("f.ts"));
    expect(run).toThrow('data: step 0: input "ids"[5] is 5, outside [0, 5)');
  });
});

test("--data is refused for a task model: its batches come from its loader", async () => {
  const resolved = {
    definition: definition({ inputs: (c) => ({ ids: int32([c.seq], c.vocab) }) }),
    config,
    preset: "tiny",
    batch: 2,
    seq: 3,
  };
  await expect(trainingData(resolved, { data: "corpus.txt", steps: 1, seed: 1, modelPath: "m.ts" })).rejects.toThrow(
    /^--data: this model declares its own inputs, and its batches come from its `data` loader \(or are synthetic\)/,
  );
});
