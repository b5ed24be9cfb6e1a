// Traces a model definition into the forward graph of a program: parameters (in state_dict order),
// token inputs, the model's forward, and the loss (training) or the logits at one position (inference).
import { GraphBuilder } from "../../ir/builder.ts";
import { selectPosition } from "../../ir/passes/select_position.ts";
import type { Graph } from "../../ir/types.ts";
import { ConfigError, type ModelConfig, type ModelDefinition, type LanguageModel } from "../dsl/model.ts";
import { Tensor } from "../dsl/tensor.ts";
import { TraceError, callerLocOf, currentTrace, withTrace } from "../dsl/trace.ts";

export interface ProgramShape {
  batch: number;
  seq: number;
  /** Training adds targets and the loss; inference returns logits. */
  kind: "train" | "infer";
}

export function buildModel(def: ModelDefinition, config: ModelConfig): LanguageModel {
  try {
    return def.build(config);
  } catch (e) {
    if (e instanceof ConfigError) throw new TraceError(`bad config: ${e.message}`, callerLocOf(e));
    throw e;
  }
}

export function traceProgram(model: LanguageModel, config: ModelConfig, shape: ProgramShape): Graph {
  const b = new GraphBuilder();
  withTrace(b, () => {
    const trace = b;
    for (const [name, p] of model.namedParameters()) {
      const hint = p.parallel && { parallel: p.parallel.style, ...(p.parallel.groups > 1 ? { groups: p.parallel.groups } : {}) };
      const value = trace.value("param", [], { name, shape: p.shape, ...hint }, p.loc);
      trace.params.push({ name, shape: p.shape, init: p.init, decay: p.shape.length >= 2, value, loc: p.loc });
      currentTrace().params.set(p, value);
    }
    const tokens = trace.value("input", [], { name: "tokens", shape: [shape.batch, shape.seq], dtype: "i32" });
    trace.named.tokens = tokens;
    const logits = model.forward(new Tensor(tokens));
    const want = [shape.batch, shape.seq, config.vocab];
    if (logits.shape.join() !== want.join())
      throw new TraceError(`forward must return logits of shape [${want.join(",")}], got [${logits.shape.join(",")}]`,
        logits.value.producer.loc);
    if (shape.kind === "infer") {
      trace.named.logits = logits.value;
    } else {
      const targets = trace.value("input", [], { name: "targets", shape: [shape.batch, shape.seq], dtype: "i32" });
      trace.named.targets = targets;
      // The loss belongs to the line that made the logits: the model's own code has no loss line.
      trace.named.loss = trace.value("cross_entropy", [logits.value, targets], {}, logits.value.producer.loc);
    }
  });
  return shape.kind === "infer" ? selectPosition(b.build()) : b.build();
}
