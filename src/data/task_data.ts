// A task model's training data: each step's global batch from the model's `data` loader, or drawn at
// random from its declared inputs when it has none, checked against the inputs and written as a step
// file for the runtime. A batch depends on the seed and the step alone, so a resumed run reads the same
// batches as an unbroken one. A loader's mistake is the model's: a TraceError at its line.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { Batch, BatchRequest, ModelConfig, ModelDefinition } from "../dsl/model.ts";
import type { TaskInput } from "../dsl/task_inputs.ts";
import { TraceError, callerLocOf } from "../dsl/trace.ts";
import { mulberry32 } from "../util/random.ts";
import { writeStepFile } from "./step_file.ts";

export interface TaskDataRequest {
  /** The global batch (every data-parallel rank's rows): the runtime hands each rank its rows. */
  batch: number;
  steps: number;
  seed: number;
  /** Where the step file goes (a cache folder). */
  dir: string;
  /** The model file, which names the step file with the rest of the request. */
  modelPath: string;
}

export interface PreparedTaskData {
  stepFile: string;
  /** One line for logs: where the batches came from. */
  source: string;
}

export function prepareTaskData(
  def: ModelDefinition,
  config: ModelConfig,
  inputs: readonly TaskInput[],
  request: TaskDataRequest,
): PreparedTaskData {
  const { batch, steps, seed } = request;
  const loader = def.data;
  const key = crypto
    .createHash("sha256")
    .update(JSON.stringify([request.modelPath, config, batch, steps, seed]))
    .digest("hex")
    .slice(0, 16);
  const stepFile = path.join(request.dir, `steps-${key}.bin`);
  fs.mkdirSync(request.dir, { recursive: true });
  const rowElements = (x: TaskInput) => x.shape.reduce((a, b) => a * b, 1);
  writeStepFile(
    stepFile,
    inputs.map((x) => ({ name: x.name, dtype: x.dtype, rowElements: rowElements(x) })),
    batch,
    steps,
    (step) => {
      const values = loader ? callLoader(def, config, { step, batch, seed }) : syntheticBatch(inputs, batch, seed, step);
      checkNames(def, values, inputs, step);
      return inputs.map((x) => checkedInput(def, values, x, batch * rowElements(x), step));
    },
  );
  const what = loader ? "the model's data loader" : "synthetic batches drawn from the declared inputs (the model has no data loader)";
  return { stepFile, source: `${what}: ${steps} steps of ${batch} examples, seed ${seed}` };
}

function callLoader(def: ModelDefinition, config: ModelConfig, request: BatchRequest): unknown {
  try {
    return def.data!(config, request);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    throw new TraceError(`data: the loader threw at step ${request.step}: ${message}`, callerLocOf(e) ?? def.loc);
  }
}

const failAt = (def: ModelDefinition, step: number) => (message: string) => new TraceError(`data: step ${step}: ${message}`, def.loc);

/** A batch is an object holding every declared input and nothing else. */
function checkNames(def: ModelDefinition, batch: unknown, inputs: readonly TaskInput[], step: number): void {
  const fail = failAt(def, step);
  if (typeof batch !== "object" || batch === null || Array.isArray(batch))
    throw fail(`the loader must return an object of named typed arrays, got ${describe(batch)}`);
  const declared = inputs.map((x) => x.name);
  const missing = declared.find((k) => !Object.hasOwn(batch, k));
  if (missing) throw fail(`input "${missing}" is missing from the batch (the model declares: ${declared.join(", ")})`);
  const extra = Object.keys(batch).find((k) => !declared.includes(k));
  if (extra) throw fail(`the batch has "${extra}", which the model does not declare (it declares: ${declared.join(", ")})`);
}

/** Input `x` of a batch, as the declared dtype and size require, with its values in range. */
function checkedInput(def: ModelDefinition, batch: unknown, x: TaskInput, length: number, step: number): Int32Array | Float32Array {
  const fail = failAt(def, step);
  const value = (batch as Record<string, unknown>)[x.name];
  const want = x.dtype === "i32" ? Int32Array : Float32Array;
  const shape = `[${[`batch ${length / x.shape.reduce((a, b) => a * b, 1)}`, ...x.shape].join(", ")}]`;
  if (!(value instanceof want))
    throw fail(`input "${x.name}" must be a ${want.name} (${x.dtype === "i32" ? "int32" : "float32"}), got ${describe(value)}`);
  if (value.length !== length) throw fail(`input "${x.name}" must hold ${length} values (${shape}, flattened), got ${value.length}`);
  for (let i = 0; i < value.length; i++) {
    const v = value[i];
    if (x.below !== undefined ? v < 0 || v >= x.below : !Number.isFinite(v))
      throw fail(`input "${x.name}"[${i}] is ${v}, ${x.below !== undefined ? `outside [0, ${x.below})` : "not finite"}`);
  }
  return value as Int32Array | Float32Array;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return `an array of ${value.length}`;
  const kind = typeof value === "object" ? ((value as object).constructor?.name ?? "object") : typeof value;
  return `${/^[aeiouAEIOU]/.test(kind) ? "an" : "a"} ${kind}`;
}

/** Integers uniform in [0, below), floats N(0, 1), from a generator seeded by the seed, the step and the input. */
function syntheticBatch(inputs: readonly TaskInput[], batch: number, seed: number, step: number): Batch {
  const out: Batch = {};
  inputs.forEach((x, i) => {
    const random = mulberry32((seed * 1_000_003 + step * 8191 + i) >>> 0);
    const n = batch * x.shape.reduce((a, b) => a * b, 1);
    const below = x.below;
    out[x.name] =
      below !== undefined
        ? Int32Array.from({ length: n }, () => Math.floor(random() * below))
        : Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random()));
  });
  return out;
}
