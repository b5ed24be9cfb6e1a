// `stow train`: compile the model, build it, check the outputs, prepare the data, then run steps
// in-process through the native addon with a live progress line; save checkpoints (periodically, on
// SIGINT or SIGTERM, after an error, at the end) and, at the end, print a short sample.
import { rmSync } from "node:fs";
import path from "node:path";
import { openPlan, type StowOptions } from "../../native/index.ts";
import { createProgress } from "../cli/progress.ts";
import { formatBytes } from "../../base/units.ts";
import { trainingData } from "./training_data.ts";
import { buildCompiledPlan } from "./build.ts";
import { prepare, type PrepareOptions } from "./prepare.ts";
import { sampleText } from "./sample.ts";
import { paramCount, worldSize } from "../../plan/plan.ts";
import { backendCaps } from "../../plan/backends.ts";
import { cacheDir } from "../../base/paths.ts";
import { NonFiniteStateError, StoppedBySignal, UserError } from "../../base/errors.ts";
import { readSafetensorsHeader } from "../checkpoint/safetensors.ts";
import type { MeasuredTimes } from "../../ir/cost_model.ts";
import type { Plan } from "../../plan/plan.ts";
import { type NodeProfile } from "../../plan/node_profile.ts";
import { measuredTimes, profileText, readProfile } from "./profile.ts";
import { trainRanks } from "./train_ranks.ts";
import { checkOutputPaths, checkSaveSpace } from "./output_paths.ts";
import { watchStopSignals } from "./stop_signals.ts";
import { changedSince, fileSha256, savedSha256 } from "../checkpoint/model_origin.ts";
import { runSummary } from "./run_summary.ts";
import { measuredTimeline, writeTrace } from "../report/trace.ts";

/** The step a checkpoint was saved at (its metadata), so a resumed run knows how many are left. */
function savedStep(metadata: Record<string, string>): number {
  const step = Number(metadata.step);
  return Number.isInteger(step) && step >= 0 ? step : 0;
}

export interface TrainOptions extends PrepareOptions {
  steps: number;
  /** The disk tier's folder (--disk-path): its scratch file, for plans that keep model data on disk. */
  diskPath?: string;
  /** Stop after this many steps of this invocation (a time-boxed job); the schedule still spans `steps`. */
  stopAfter?: number;
  data?: string;
  init?: string;
  resume?: string;
  save?: string;
  /** Also save every this many steps, and when this many minutes have passed since the last save. */
  saveEvery?: number;
  saveEveryMinutes?: number;
  /** Keep the K newest saves as <stem>.step<N><ext> too (1: only the --save file). */
  keep?: number;
  metrics?: string;
  /** Profiled warm-up steps before re-planning with measured times (default: 2 when model data is offloaded, else 0). */
  profileSteps?: number;
  /** Where to keep the profile (default: a file in the build cache). */
  profile?: string;
  /** Write the last profiled step here as a Chrome trace (profiles 2 steps when nothing else asks for any). */
  trace?: string;
  run: Omit<StowOptions, "dataPath" | "initPath" | "resumePath" | "metricsPath" | "steps" | "threads" | "profilePath" | "profileSteps">;
  sample: { tokens: number; prompt: string; temperature: number; topK: number } | undefined;
}

export async function train(modelPath: string, opts: TrainOptions, log = (s: string) => console.log(s)): Promise<void> {
  // The profile times nodes on the host clock, which on a GPU sees launches, not kernels.
  const backend = backendCaps(opts.backend ?? "cpu");
  if (!backend.profiling && (opts.profileSteps ?? 0) > 0)
    throw new UserError(`--profile-steps: the profiled warm-up is not available with --backend ${backend.name} yet`);
  // Before anything is compiled, built or trained: can the run write where it will write?
  checkOutputPaths({ save: opts.save, metrics: opts.metrics, profile: opts.profile, cache: cacheDir() });
  const prepared = await prepare(modelPath, opts);
  let plan = prepared.plan;
  if (opts.save) checkSaveSpace(opts.save, checkpointBytes(plan));
  const profileSteps = opts.profileSteps ?? ((plan.checkpoint.offload && backend.profiling) || opts.trace ? DEFAULT_PROFILE_STEPS : 0);
  const profilePath = profileSteps > 0 ? (opts.profile ?? path.join(cacheDir(), `profile-${process.pid}.json`)) : undefined;
  const model = { modelPath: path.resolve(modelPath), modelSha256: fileSha256(modelPath) };
  const first = startStep(opts, model.modelPath, log);
  if (opts.trace) checkTraceable(opts, profileSteps, first);
  log(
    `model ${plan.modelPath}: ${paramCount(plan).toLocaleString("en-US")} parameters, ` +
      `predicted device peak ${formatBytes(plan.train.memory.peak)}${worldSize(plan.decisions) > 1 ? ` on each of ${worldSize(plan.decisions)} ranks` : ""}`,
  );
  const data = await trainingData(prepared.resolved, { data: opts.data, steps: opts.steps, seed: opts.run.seed ?? 0, ...model });
  let built = await buildCompiledPlan(plan, log);
  log(`data ${data.description}`);
  if (worldSize(plan.decisions) > 1) {
    // The ranks run the standalone binary under mpirun; the checkpoint they save is whole.
    const ranks = worldSize(plan.decisions);
    const losses = await trainRanks({ trainBin: built.trainBinPath, dataFile: data.file, ranks, ...model }, opts, log);
    for (const line of runSummary(losses, { checkpoint: opts.save, metrics: opts.metrics, task: !data.language })) log(line);
    return;
  }

  const sessionOptions = (resumePath: string | undefined, profiling: boolean): StowOptions => ({
    ...opts.run,
    dataPath: data.file,
    initPath: resumePath ? undefined : opts.init,
    resumePath,
    metricsPath: opts.metrics,
    steps: opts.steps,
    threads: opts.threads,
    hostMemory: opts.hostMemory,
    diskPath: opts.diskPath,
    ...model,
    ...(profiling && { profilePath, profileSteps }),
  });
  let session = openPlan(built.libPath, sessionOptions(opts.resume, profilePath !== undefined));
  const progress = createProgress({ total: opts.steps });
  const stop = watchStopSignals((signal) => {
    progress.done();
    log(`${signal}: stopping after this step${opts.save ? ` to save ${opts.save}` : " (no --save: nothing will be saved)"}`);
  });
  let step = first;
  let sessionSteps = 0;
  const losses: number[] = [];
  const keep = opts.keep ?? 1;
  let lastSave = Date.now();
  const saveNow = () => {
    session.save(opts.save!, keep);
    lastSave = Date.now();
  };
  try {
    let last;
    const stopAt = Math.min(opts.steps, step + (opts.stopAfter ?? Infinity));
    while (step < stopAt) {
      last = session.step();
      step = last.step;
      sessionSteps++;
      losses.push(last.loss);
      progress.update({ step, loss: last.loss, tokensPerSecond: last.tokens / last.seconds, deviceBytes: last.devicePeakBytes });
      await stop.between();
      if (stop.signal) {
        if (opts.save) saveNow();
        throw new StoppedBySignal(
          `stopped by ${stop.signal} after step ${step}` +
            (opts.save ? `; saved ${opts.save} (continue with --resume ${opts.save})` : "; nothing saved (no --save)"),
          stop.signal,
        );
      }
      if (opts.save && step < stopAt && saveDue(opts, step, (Date.now() - lastSave) / 60_000)) saveNow();
      // After the profiled steps (the first step is not profiled: it touches fresh memory): the measured
      // trace, then a re-plan with the measured times.
      if (profilePath && sessionSteps === 1 + profileSteps) {
        progress.done();
        const profile = readProfile(profilePath);
        if (opts.trace) {
          writeTrace(opts.trace, measuredTimeline(plan, profile), `${plan.modelPath}: step ${step}, measured`);
          log(`trace of step ${step} as measured: ${opts.trace} (open it in https://ui.perfetto.dev or chrome://tracing)`);
        }
        const refined = step < stopAt ? refinePlan(plan, profile, prepared.replan, log) : undefined;
        if (refined) {
          built = await buildCompiledPlan(refined, log);
          const handover = path.join(cacheDir(), `replan-${process.pid}.safetensors`);
          session.save(handover);
          session.close();
          session = openPlan(built.libPath, sessionOptions(handover, false));
          rmSync(handover, { force: true });
          plan = refined;
        }
      }
    }
    progress.done();
    if (last)
      log(
        `device high-water ${formatBytes(last.devicePeakBytes)} (planned ${formatBytes(plan.train.memory.peak)}), ` +
          `final loss ${last.loss.toFixed(4)}`,
      );
    if (opts.save) {
      saveNow();
      if (last === undefined) log(`saved the initialisation to ${opts.save} (--steps 0)`);
    }
    stop.dispose();
    // The run is done and saved: a prompt this model cannot read costs the sample, not the run.
    if (opts.sample && data.language) {
      const sample = sampleText(session, opts.sample.prompt, { ...opts.sample, seed: opts.run.seed ?? 0 });
      log("problem" in sample ? `sample skipped: ${sample.problem}` : `\nsample:\n${sample.text}\n`);
    }
    for (const line of runSummary(losses, { checkpoint: opts.save, metrics: opts.metrics, task: !data.language })) log(line);
  } catch (error) {
    // After a signal the run has saved already; a state that was not finite would be refused again.
    const saveFailed = error instanceof StoppedBySignal || error instanceof NonFiniteStateError;
    if (!saveFailed && opts.save && sessionSteps > 0) keepLastState(error, () => saveNow(), opts.save);
    throw error;
  } finally {
    stop.dispose();
    session.close();
    if (profilePath && !opts.profile) rmSync(profilePath, { force: true });
  }
}

/** Periodic saves: every N steps, or M minutes after the last save. */
function saveDue(opts: TrainOptions, step: number, minutesSinceSave: number): boolean {
  return (
    (opts.saveEvery !== undefined && step % opts.saveEvery === 0) ||
    (opts.saveEveryMinutes !== undefined && minutesSinceSave >= opts.saveEveryMinutes)
  );
}

/**
 * After an error, saves the last whole state (the runtime refuses a step that failed half-way, and a
 * state that is not finite), and says in the error's message what happened to it.
 */
function keepLastState(error: unknown, save: () => void, file: string): void {
  let note: string;
  try {
    save();
    // The session's step, which may be one past the last this loop saw (its metrics failed after it).
    note = `the state of step ${readSafetensorsHeader(file).metadata.step} was saved to ${file} (continue with --resume ${file})`;
  } catch (e) {
    note = (e as Error).message;
  }
  if (error instanceof Error) error.message += `\n${note}`;
}

/** Parameters and both AdamW moments, float32, and room for the header. */
function checkpointBytes(plan: Plan): number {
  return 3 * 4 * paramCount(plan) + (1 << 20);
}

const DEFAULT_PROFILE_STEPS = 2;

/** The measured trace is the last profiled step's: the run must reach it, in-process. */
function checkTraceable(opts: TrainOptions, profileSteps: number, first: number): void {
  if (profileSteps === 0)
    throw new UserError("--trace: the measured trace comes from the profiled steps, which --profile-steps 0 turns off");
  if ((opts.tp ?? 1) > 1 || (opts.dp ?? 1) > 1)
    throw new UserError("--trace: multi-rank runs (--tp, --dp) are not profiled yet; stow plan --trace gives the predicted step");
  const steps = Math.min(opts.steps - first, opts.stopAfter ?? Infinity);
  if (steps < 1 + profileSteps)
    throw new UserError(
      `--trace: the run takes ${steps} steps, and the trace is of step ${1 + profileSteps} ` +
        `(the first step is not profiled, then ${profileSteps} are); raise --steps`,
    );
}

/** What makes two offload plans run differently. */
function scheduleKey(plan: Plan): string {
  const c = plan.checkpoint;
  const s = c.schedule;
  return JSON.stringify([
    c.mode,
    c.regions,
    c.moved,
    c.moveLookahead,
    c.offload,
    s && [[...s.resident].sort(), s.lookahead, [...s.keep].sort()],
  ]);
}

/**
 * Compiles again with the measured node times and says how prediction and measurement compare. Returns
 * the refined plan when it schedules differently (the run continues on it), else undefined.
 */
function refinePlan(plan: Plan, profile: NodeProfile, replan: (m: MeasuredTimes) => Plan, log: (s: string) => void): Plan | undefined {
  log(profileText(plan, profile));
  const refined = replan(measuredTimes(plan.train, profile));
  const ms = (s: number) => `${(s * 1000).toFixed(1)} ms`;
  if (scheduleKey(refined) === scheduleKey(plan)) {
    log(`re-plan with the measured times: the same schedule (predicted step ${ms(refined.checkpoint.predicted.seconds)})`);
    return undefined;
  }
  const s = refined.checkpoint.schedule;
  log(
    `re-planned with the measured times: predicted step ${ms(refined.checkpoint.predicted.seconds)}` +
      (s ? ` (${s.resident.size} chunks resident, copies ${s.lookahead} loads ahead, ${s.keep.size} kept)` : "") +
      `; the run continues on the refined plan`,
  );
  return refined;
}

/** The step a resumed run starts after; warns when the model file changed since the checkpoint. */
function startStep(opts: TrainOptions, modelPath: string, log: (s: string) => void): number {
  if (!opts.resume) return 0;
  const header = readSafetensorsHeader(opts.resume);
  const step = savedStep(header.metadata);
  if (step >= opts.steps)
    throw new UserError(`--resume: ${opts.resume} is already at step ${step}, and --steps is ${opts.steps}; raise --steps to train on`);
  const warning = changedSince(opts.resume, modelPath, savedSha256(header.metadata));
  if (warning) log(warning);
  return step;
}
