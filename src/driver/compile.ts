// A model definition to a Plan: trace the training and inference programs, then plan them (plan/planner.ts).
import type { ModelConfig, ModelDefinition } from "../dsl/model.ts";
import { TraceError } from "../dsl/trace.ts";
import { ShardError } from "../../ir/passes/shard.ts";
import { UnusedParameterError } from "../../ir/passes/autodiff.ts";
import { type CompileOptions, type Plan, microBatch } from "../../plan/plan.ts";
import { planTraining } from "../../plan/planner.ts";
import { flagName } from "../cli/flag_names.ts";
import { buildModel, traceProgram } from "./trace_program.ts";
import { taskInputs } from "../dsl/task_inputs.ts";

export function compilePlan(def: ModelDefinition, modelPath: string, config: ModelConfig, opts: CompileOptions): Plan {
  const model = buildModel(def, config);
  const inputs = taskInputs(def, config);
  // Each rank's program runs its micro-batch of the global batch (--batch).
  const train = traceProgram(model, config, { batch: microBatch(opts), seq: opts.seq, kind: "train" }, inputs);
  const infer = traceProgram(model, config, { batch: 1, seq: config.seq, kind: "infer" }, inputs);
  try {
    return planTraining({ train, infer }, modelPath, config, opts);
  } catch (e) {
    // A graph that cannot be cut across the ranks is a model error, at the line that made the value.
    if (e instanceof ShardError) throw new TraceError(e.phrase(flagName), e.loc);
    // So is a parameter the loss does not read, at the line that made the parameter.
    if (e instanceof UnusedParameterError) throw new TraceError(e.message, e.loc);
    throw e;
  }
}
