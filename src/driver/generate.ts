// `stow generate CKPT`: the checkpoint names the model file and config it was trained with; compile
// that model's plan (cached), load the parameters, and sample from the inference program.
import { UserError } from "../cli/errors.ts";
import { readSafetensorsHeader } from "../checkpoint/safetensors.ts";
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
  let origin: { model: string; config: Record<string, number> };
  try {
    origin = JSON.parse(header.metadata?.model ?? "");
  } catch {
    throw new UserError(`${checkpoint}: not a Stowage checkpoint (its metadata has no "model" entry naming the model file)`);
  }
  const set = Object.entries(origin.config).map(([k, v]) => `${k}=${v}`);
  const { plan } = await prepare(origin.model, { set, batch: 1, threads: opts.threads, clip: false, checkpoint: "none" });
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
