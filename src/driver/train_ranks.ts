// `stow train --tp N` (and --dp M: M x N ranks): the ranks are processes. The plan's standalone train binary runs on N ranks
// under mpirun (the in-process addon runs one). Rank 0 reports each step as a JSON line
// (runtime/train_events.ts), which drives the progress line here, and writes the metrics and the
// checkpoint. When a rank fails, it reports an error event and ends the job (MPI_Abort); when one dies,
// mpirun ends the others and says so on stderr. Either way the report names the rank.
// SIGINT and SIGTERM here become SIGUSR1 to mpirun, which forwards it to the ranks: they agree to stop
// after the step and save (runtime/core/train_main.cpp). mpirun runs in its own process group, so a Ctrl-C
// at the terminal reaches only this process, and not mpirun, which would end the ranks unsaved.
import { spawn } from "node:child_process";
import { createProgress } from "../cli/progress.ts";
import { EXIT_NOT_FINITE, NonFiniteStateError, StoppedBySignal, UserError } from "../../base/errors.ts";
import type { TrainOptions } from "./train.ts";
import { watchStopSignals } from "./stop_signals.ts";
import { mpirunArgs } from "../util/mpirun.ts";
import { trainFlagArgs } from "../../runtime/run_contract.ts";
import { type EndEvent, type ErrorEvent, type SavedEvent, parseTrainEvent } from "../../runtime/train_events.ts";

export interface RankRun {
  trainBin: string;
  dataFile: string;
  ranks: number;
  /** The model file and its hash, which checkpoints record. */
  modelPath: string;
  modelSha256: string;
}

/** The train binary's flags for a run of `stow train` (the run contract's, runtime/run_contract.ts). */
export function trainBinaryArgs(opts: TrainOptions, dataFile: string, model?: { modelPath: string; modelSha256: string }): string[] {
  return trainFlagArgs({
    ...opts.run,
    dataPath: dataFile,
    steps: opts.steps,
    stopAfter: opts.stopAfter,
    threads: opts.threads,
    initPath: opts.init,
    resumePath: opts.resume,
    metricsPath: opts.metrics,
    hostMemory: opts.hostMemory,
    diskPath: opts.diskPath,
    save: opts.save,
    saveEvery: opts.saveEvery,
    saveEveryMinutes: opts.saveEveryMinutes,
    keep: opts.keep,
    modelPath: model?.modelPath,
    modelSha256: model?.modelSha256,
  });
}

/** Runs the job; returns rank 0's losses, one a step. */
export async function trainRanks(job: RankRun, opts: TrainOptions, log: (s: string) => void): Promise<number[]> {
  const child = spawn("mpirun", mpirunArgs(job.ranks, [job.trainBin, ...trainBinaryArgs(opts, job.dataFile, job)]), {
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  const progress = createProgress({ total: opts.steps });
  const stop = watchStopSignals((signal) => {
    progress.done();
    log(`${signal}: stopping every rank after this step${opts.save ? ` to save ${opts.save}` : " (no --save: nothing will be saved)"}`);
    child.kill("SIGUSR1");
  });
  let stderr = "";
  let pending = "";
  const others: string[] = [];
  const losses: number[] = [];
  const errors: ErrorEvent[] = [];
  let saved: SavedEvent | undefined;
  let end: EndEvent | undefined;
  child.stdout.on("data", (chunk: Buffer) => {
    pending += chunk.toString("utf8");
    const lines = pending.split("\n");
    pending = lines.pop()!;
    for (const line of lines) {
      const event = parseTrainEvent(line);
      if (event === undefined) {
        if (line.trim()) others.push(line);
      } else if (event.event === "step") {
        progress.update({ step: event.step, loss: event.loss, tokensPerSecond: event.tokens_per_s });
        losses.push(event.loss);
      } else if (event.event === "saved") saved = event;
      else if (event.event === "end") end = event;
      else if (event.event === "error") errors.push(event);
    }
  });
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
  const status = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on("error", (e: NodeJS.ErrnoException) =>
      reject(
        e.code === "ENOENT"
          ? new UserError(
              `${job.ranks} ranks (--tp, --dp) start with mpirun, which is not installed: ` + "install openmpi-bin (npm run setup does)",
            )
          : e,
      ),
    );
    child.on("close", (code, signal) => resolve({ code, signal }));
  }).finally(() => stop.dispose());
  progress.done();
  const savedText = saved && `saved ${saved.path} at step ${saved.step}`;
  if (stop.signal) {
    throw new StoppedBySignal(
      `stopped by ${stop.signal}` +
        (savedText
          ? `; ${savedText} (continue with --resume ${opts.save})`
          : errors.length > 0
            ? `; ${errors[0].message}`
            : "; nothing saved"),
      stop.signal,
    );
  }
  if (status.code === EXIT_NOT_FINITE) throw new NonFiniteStateError(describeFailure(job.ranks, status, errors, stderr));
  if (status.code !== 0) throw new UserError(describeFailure(job.ranks, status, errors, stderr) + (savedText ? `\n${savedText}` : ""));
  for (const line of others) log(line);
  if (end?.device_peak_bytes !== undefined)
    log(
      `device high-water ${end.device_peak_bytes} bytes on rank 0 (planned ${end.planned_peak_bytes}), final loss ${end.loss!.toFixed(4)}`,
    );
  return losses;
}

/** One message for a failed job: the rank that failed or died, and why. */
export function describeFailure(
  ranks: number,
  status: { code: number | null; signal: string | null },
  errors: ErrorEvent[],
  stderr: string,
): string {
  const aborted = errors.find((e) => e.abort);
  if (aborted) {
    // A message may go on for lines (a library search lists where it looked).
    const stopped = aborted.message.includes("\n") ? "\nThe other ranks were stopped." : "; the other ranks were stopped";
    return `rank ${aborted.rank} of ${ranks} failed: ${aborted.message}${stopped}`;
  }
  // A rank that died says nothing itself; mpirun does.
  const died = /process rank (\d+) with PID \d+ on node \S+ exited on signal (\d+) \(([^)]*)\)/.exec(stderr);
  if (died) return `rank ${died[1]} of ${ranks} died (signal ${died[2]}, ${died[3]}); the other ranks were stopped`;
  // The ranks stopped together, and rank 0 said why.
  if (errors.length > 0) return errors[0].message;
  const how = status.signal ? `was killed by ${status.signal}` : `exited with code ${status.code}`;
  return `the tensor-parallel job of ${ranks} ranks ${how}:\n${stderr.trim()}`;
}
