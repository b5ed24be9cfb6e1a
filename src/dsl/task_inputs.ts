// A task model's named inputs (ModelDefinition.inputs), checked once for a config: the tracer gives each
// an input node of shape [batch, ...shape], and the data preparation draws or checks each step's values
// against the same list. A mistake is the model's, reported at the line that defined the model.
import { TraceError } from "./trace.ts";
import type { InputSpec, ModelConfig, ModelDefinition } from "./model.ts";

export interface TaskInput {
  name: string;
  dtype: "i32" | "f32";
  /** Per example; the batch axis goes in front. */
  shape: number[];
  /** Integers lie in [0, below). */
  below?: number;
}

/** An identifier that fits the step file's 64-byte name field with its NUL (runtime/core/step_file.h). */
const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** The model's inputs for this config, in declaration order; undefined for a language model. */
export function taskInputs(def: ModelDefinition, config: ModelConfig): TaskInput[] | undefined {
  if (!def.inputs) return undefined;
  const fail = (message: string) => new TraceError(`inputs: ${message}`, def.loc);
  let specs: unknown;
  try {
    specs = def.inputs(config);
  } catch (e) {
    throw fail(`threw ${e instanceof Error ? e.message : String(e)}`);
  }
  if (typeof specs !== "object" || specs === null || Array.isArray(specs))
    throw fail("must return an object of named inputs, e.g. { tokens: int32([config.seq], config.vocab) }");
  const entries = Object.entries(specs as Record<string, unknown>);
  if (entries.length === 0) throw fail("the model declares no inputs");
  return entries.map(([name, spec]) => checkSpec(name, spec, fail));
}

function checkSpec(name: string, value: unknown, fail: (m: string) => TraceError): TaskInput {
  if (!NAME.test(name)) throw fail(`input name "${name}" is not an identifier of at most 63 characters (letters, digits, _)`);
  const spec = value as Partial<InputSpec> | undefined;
  if (typeof spec !== "object" || spec === null || (spec.dtype !== "i32" && spec.dtype !== "f32"))
    throw fail(`input "${name}" must be int32(shape, below) or float32(shape)`);
  const shape = spec.shape;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d > 0))
    throw fail(`input "${name}" has shape ${JSON.stringify(shape)}; expected positive integers (per example, no batch axis)`);
  if (spec.dtype === "f32") return { name, dtype: "f32", shape: [...shape] };
  const below = (spec as { below?: unknown }).below;
  if (typeof below !== "number" || !Number.isInteger(below) || below < 1 || below > 2 ** 31 - 1)
    throw fail(`input "${name}": below must be a positive int32 (values lie in [0, below)), got ${String(below)}`);
  return { name, dtype: "i32", shape: [...shape], below };
}
