// `stow generate CKPT`: the checkpoint names the model file (relative to its own folder) and config it
// was trained with; compile that model's plan (cached), load the parameters, and sample from the
// inference program.
import { UserError } from "../../base/errors.ts";
import { readSafetensorsHeader } from "../checkpoint/safetensors.ts";
import { changedSince, modelOrigin } from "../checkpoint/model_origin.ts";
import { openPlan } from "../../native/index.ts";
import { buildCompiledPlan } from "./build.ts";
import { prepare } from "./prepare.ts";
import { sampleText } from "./sample.ts";

export interface GenerateOptions {
  prompt: string;
  tokens: number;
  temperature: number;
  topK: number;
  seed: number;
  threads: number;
}

export async function generate(checkpoint: string, opts: GenerateOptions): Promise<void> {
  const header = readSafetensorsHeader(checkpoint);
  const origin = modelOrigin(checkpoint, header.metadata);
  const warning = changedSince(checkpoint, origin.modelPath, origin.sha256);
  if (warning) console.error(warning);
  const set = Object.entries(origin.config).map(([k, v]) => `${k}=${v}`);
  const { plan } = await prepare(origin.modelPath, { set, batch: 1, threads: opts.threads, clip: false, checkpoint: "none" });
  if (!plan.infer.graph.named.logits)
    throw new UserError(
      `${checkpoint}: its model ${plan.modelPath} declares its own inputs and loss, so it has no next-token logits to sample from`,
    );
  const built = await buildCompiledPlan(plan, (s) => console.error(s));
  const session = openPlan(built.libPath, { initPath: checkpoint, threads: opts.threads });
  try {
    const sample = sampleText(session, opts.prompt, opts);
    if ("problem" in sample) throw new UserError(`--prompt: ${sample.problem}`);
    process.stdout.write(sample.text + "\n");
  } finally {
    session.close();
  }
}
