// Traces a model definition into the forward graph of a program: parameters (in state_dict order),
// token inputs, the model's forward, and the loss (training) or the logits at one position (inference).
// A task model (one that declares its inputs) gets its named inputs instead and returns its own loss,
// in both programs: its inference program is that loss at batch 1, which no command runs yet.
import { GraphBuilder } from "../../ir/builder.ts";
import { selectPosition } from "../../ir/passes/select_position.ts";
import { type Graph, type SourceLoc, TASK_INPUT_PREFIX, formatShape } from "../../ir/types.ts";
import { ConfigError, type ModelConfig, type ModelDefinition, type LanguageModel, type TaskModel } from "../dsl/model.ts";
import { ModuleBuffer } from "../dsl/parameter.ts";
import { Tensor } from "../dsl/tensor.ts";
import { TraceError, callerLocOf, currentTrace, withDeepStacks, withTrace } from "../dsl/trace.ts";
import type { TaskInput } from "../dsl/task_inputs.ts";

export interface ProgramShape {
  batch: number;
  seq: number;
  /** Training adds targets and the loss; inference returns logits. */
  kind: "train" | "infer";
}

export function buildModel(def: ModelDefinition, config: ModelConfig): LanguageModel | TaskModel {
  try {
    return withDeepStacks(() => def.build(config));
  } catch (e) {
    if (e instanceof ConfigError) throw new TraceError(`bad config: ${e.message}`, callerLocOf(e));
    throw asModelError(e);
  }
}

/**
 * An exception thrown while the model's own code ran (build, a constructor, forward) is the user's: it
 * is reported at its first stack frame in their files, as a TraceError. One with no such frame is ours.
 */
function asModelError(error: unknown): unknown {
  if (error instanceof TraceError || !(error instanceof Error)) return error;
  const loc = callerLocOf(error);
  if (!loc) return error;
  const generic = error.name === "Error";
  return new TraceError(generic ? error.message : `${error.name}: ${error.message}`, loc);
}

/** The model's forward on its input(s), with its mistakes reported as the user's. */
function runForward(forward: () => unknown, what: string, last: () => SourceLoc | undefined): Tensor {
  let result: unknown;
  try {
    result = withDeepStacks(forward);
  } catch (e) {
    throw asModelError(e);
  }
  if (!(result instanceof Tensor))
    throw new TraceError(
      `forward must return a Tensor (${what}), but it returned ${describeValue(result)}` +
        (last() ? "; the last op it traced is here" : ""),
      last(),
    );
  return result;
}

function describeValue(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === "object") return `an object (${value.constructor?.name ?? "Object"})`;
  return `a ${typeof value}`;
}

/**
 * The program of `model`: a language model's (token stream, next-token cross-entropy), or, given its
 * inputs, a task model's (named inputs, its own scalar loss).
 */
export function traceProgram(model: LanguageModel | TaskModel, config: ModelConfig, shape: ProgramShape, inputs?: TaskInput[]): Graph {
  const b = new GraphBuilder();
  withTrace(b, () => {
    currentTrace().training = shape.kind === "train"; // dropout is the identity in inference
    const trace = b;
    for (const [name, p] of model.namedParameters()) {
      const hint = p.parallel && { parallel: p.parallel.style, ...(p.parallel.groups > 1 ? { groups: p.parallel.groups } : {}) };
      const value = trace.value("param", [], { name, shape: p.shape, ...hint }, p.loc);
      const buffer = p instanceof ModuleBuffer;
      trace.params.push({
        name,
        shape: p.shape,
        init: p.init,
        decay: !buffer && p.shape.length >= 2,
        value,
        loc: p.loc,
        ...(buffer && { buffer }),
      });
      currentTrace().params.set(p, value);
    }
    if (inputs) {
      traceTask(b, model as TaskModel, shape.batch, inputs);
      return;
    }
    const tokens = trace.value("input", [], { name: "tokens", shape: [shape.batch, shape.seq], dtype: "i32" });
    trace.named.tokens = tokens;
    const last = () => trace.nodes.at(-1)?.loc;
    const logits = runForward(() => (model as LanguageModel).forward(new Tensor(tokens)), "the logits", last);
    const want = [shape.batch, shape.seq, config.vocab];
    if (logits.shape.join() !== want.join())
      throw new TraceError(
        `forward must return logits of shape [${want.join(",")}], got [${logits.shape.join(",")}]`,
        logits.value.producer.loc,
      );
    if (shape.kind === "infer") {
      trace.named.logits = logits.value;
    } else {
      const targets = trace.value("input", [], { name: "targets", shape: [shape.batch, shape.seq], dtype: "i32" });
      trace.named.targets = targets;
      // The loss belongs to the line that made the logits: the model's own code has no loss line.
      trace.named.loss = trace.value("cross_entropy", [logits.value, targets], {}, logits.value.producer.loc);
    }
  });
  return shape.kind === "infer" && !inputs ? selectPosition(b.build()) : b.build();
}

/** A task model's inputs [batch, ...shape], its forward, and the scalar float loss it must return. */
function traceTask(b: GraphBuilder, model: TaskModel, batch: number, inputs: TaskInput[]): void {
  const tensors: Record<string, Tensor> = {};
  for (const input of inputs) {
    const value = b.value("input", [], { name: input.name, shape: [batch, ...input.shape], dtype: input.dtype });
    b.named[TASK_INPUT_PREFIX + input.name] = value;
    tensors[input.name] = new Tensor(value);
  }
  const loss = runForward(
    () => model.forward(tensors),
    "the scalar loss",
    () => b.nodes.at(-1)?.loc,
  );
  if (loss.shape.length !== 0 || loss.value.dtype !== "f32")
    throw new TraceError(
      `forward must return the loss, a float scalar (shape []), got ${loss.value.dtype} ${formatShape(loss.shape)}; ` +
        "reduce it, e.g. with .mean()",
      loss.value.producer.loc,
    );
  b.named.loss = loss.value;
}
