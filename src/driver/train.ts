// `stow train`: compile the model, build it, prepare the data, then run steps in-process through the
// native addon with a live progress line; save a checkpoint and, at the end, print a short sample.
import { mkdirSync } from "node:fs";
import path from "node:path";
import { openPlan, type StowOptions } from "../../native/index.ts";
import { createProgress, formatBytes } from "../cli/progress.ts";
import { decodeTokens, encodeText, prepareData } from "../data/tokenize.ts";
import { buildCompiledPlan } from "./build.ts";
import { prepare, type PrepareOptions } from "./prepare.ts";
import { sampleTokens } from "./sample.ts";
import { paramCount } from "./plan_report.ts";
import { cacheDir } from "./paths.ts";
import { UserError } from "../cli/errors.ts";
import { readSafetensorsHeader } from "../checkpoint/safetensors.ts";
import { trainRanks } from "./train_ranks.ts";

/** The step a checkpoint was saved at (its metadata), so a resumed run knows how many are left. */
function savedStep(checkpoint: string): number {
  const step = Number(readSafetensorsHeader(checkpoint).metadata.step);
  return Number.isInteger(step) && step >= 0 ? step : 0;
}

export interface TrainOptions extends PrepareOptions {
  steps: number;
  /** Stop after this many steps of this invocation (a time-boxed job); the schedule still spans `steps`. */
  stopAfter?: number;
  data?: string;
  init?: string;
  resume?: string;
  save?: string;
  metrics?: string;
  run: Omit<StowOptions, "dataPath" | "initPath" | "resumePath" | "metricsPath" | "steps" | "threads">;
  sample: { tokens: number; prompt: string; temperature: number; topK: number } | undefined;
}

export async function train(modelPath: string, opts: TrainOptions, log = (s: string) => console.log(s)): Promise<void> {
  const { plan } = await prepare(modelPath, opts);
  log(`model ${plan.modelPath}: ${paramCount(plan).toLocaleString("en-US")} parameters, ` +
    `predicted device peak ${formatBytes(plan.train.memory.peak)}${(opts.tp ?? 1) > 1 ? ` on each of ${opts.tp} ranks` : ""}`);
  const built = await buildCompiledPlan(plan, log);
  const data = await prepareData(opts.data, path.join(cacheDir(), "data"));
  log(`data ${data.source}: ${data.tokens.toLocaleString("en-US")} tokens`);
  if ((opts.tp ?? 1) > 1) return trainTensorParallel(built.trainBinPath, data.tokenFile, opts, log);

  const session = openPlan(built.libPath, {
    ...opts.run,
    dataPath: data.tokenFile,
    initPath: opts.init,
    resumePath: opts.resume,
    metricsPath: opts.metrics,
    steps: opts.steps,
    threads: opts.threads,
    hostMemory: opts.hostMemory,
  });
  try {
    const progress = createProgress({ total: opts.steps });
    let last;
    let step = startStep(opts);
    const stopAt = Math.min(opts.steps, step + (opts.stopAfter ?? Infinity));
    while (step < stopAt) {
      last = session.step();
      step = last.step;
      progress.update({ step, loss: last.loss, tokensPerSecond: last.tokens / last.seconds, deviceBytes: last.devicePeakBytes });
    }
    progress.done();
    if (last)
      log(`device high-water ${formatBytes(last.devicePeakBytes)} (planned ${formatBytes(plan.train.memory.peak)}), ` +
        `final loss ${last.loss.toFixed(4)}`);
    if (opts.save) {
      mkdirSync(path.dirname(path.resolve(opts.save)), { recursive: true });
      session.save(opts.save);
      log(`saved ${opts.save}`);
    }
    if (opts.sample) {
      const prompt = encodeText(opts.sample.prompt);
      const tokens = sampleTokens(session, prompt, { ...opts.sample, seed: opts.run.seed ?? 0 });
      log(`\nsample:\n${opts.sample.prompt}${decodeTokens(tokens)}`);
    }
  } finally {
    session.close();
  }
}

function startStep(opts: TrainOptions): number {
  const step = opts.resume ? savedStep(opts.resume) : 0;
  if (step >= opts.steps)
    throw new UserError(`--resume: ${opts.resume} is already at step ${step}, and --steps is ${opts.steps}; raise --steps to train on`);
  return step;
}

/** --tp > 1: the ranks run the standalone binary under mpirun; the checkpoint they save is whole. */
async function trainTensorParallel(trainBin: string, tokenFile: string, opts: TrainOptions, log: (s: string) => void): Promise<void> {
  startStep(opts);
  if (opts.save) mkdirSync(path.dirname(path.resolve(opts.save)), { recursive: true });
  await trainRanks({ trainBin, tokenFile, ranks: opts.tp! }, opts, log);
  if (opts.sample && opts.save) log(`(sample with: stow generate ${opts.save})`);
}
