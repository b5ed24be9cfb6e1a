// What `stow train` feeds the runtime: a language model's token stream (--data, or the built-in corpus),
// or a task model's step file, made from the model's data loader or drawn from its declared inputs.
import path from "node:path";
import { UserError } from "../../base/errors.ts";
import { prepareData } from "../data/prepare_data.ts";
import { prepareTaskData } from "../data/task_data.ts";
import { taskInputs } from "../dsl/task_inputs.ts";
import { TraceError } from "../dsl/trace.ts";
import { cacheDir } from "../../base/paths.ts";
import { describeTraceError } from "./prepare.ts";
import type { Resolved } from "./resolve.ts";

export interface TrainingData {
  /** The file the runtime reads: an llm.c token file or a step file. */
  file: string;
  /** One line for the log. */
  description: string;
  /** Whether the model returns next-token logits (so a run can end with a sample). */
  language: boolean;
}

export async function trainingData(
  resolved: Resolved,
  run: { data?: string; steps: number; seed: number; modelPath: string },
): Promise<TrainingData> {
  const dir = path.join(cacheDir(), "data");
  const inputs = taskInputs(resolved.definition, resolved.config);
  if (!inputs) {
    const data = await prepareData(run.data, dir, resolved.config.vocab, resolved.seq);
    return { file: data.tokenFile, description: `${data.source}: ${data.tokens.toLocaleString("en-US")} tokens`, language: true };
  }
  if (run.data !== undefined)
    throw new UserError(
      `--data: this model declares its own inputs, and its batches come from its \`data\` loader (or are synthetic); ` +
        "--data is the token stream of a language model",
    );
  try {
    const data = prepareTaskData(resolved.definition, resolved.config, inputs, {
      batch: resolved.batch,
      steps: run.steps,
      seed: run.seed,
      dir,
      modelPath: run.modelPath,
    });
    return { file: data.stepFile, description: data.source, language: false };
  } catch (e) {
    if (e instanceof TraceError) throw new UserError(describeTraceError(e));
    throw e;
  }
}
