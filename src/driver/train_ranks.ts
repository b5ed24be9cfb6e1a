// `stow train --tp N`: the ranks are processes. The plan's standalone train binary runs on N ranks
// under mpirun (the in-process addon runs one). Rank 0 prints a line per step, which drives the
// progress line here, and writes the metrics and the checkpoint. When a rank fails, it ends the job
// (MPI_Abort); when one dies, mpirun ends the others. Either way the report names the rank.
// SIGINT and SIGTERM here become SIGUSR1 to mpirun, which forwards it to the ranks: they agree to stop
// after the step and save (runtime/train_main.cpp). mpirun runs in its own process group, so a Ctrl-C
// at the terminal reaches only this process, and not mpirun, which would end the ranks unsaved.
import { spawn } from "node:child_process";
import { createProgress } from "../cli/progress.ts";
import { EXIT_NOT_FINITE, NonFiniteStateError, StoppedBySignal, UserError } from "../../base/errors.ts";
import type { TrainOptions } from "./train.ts";
import { watchStopSignals } from "./stop_signals.ts";

export interface RankRun {
  trainBin: string;
  tokenFile: string;
  ranks: number;
  /** The model file and its hash, which checkpoints record. */
  modelPath: string;
  modelSha256: string;
}

/** The train binary's flags for a run of `stow train` (runtime/train_main.cpp). */
export function trainBinaryArgs(opts: TrainOptions, tokenFile: string, model?: { modelPath: string; modelSha256: string }): string[] {
  const r = opts.run;
  const flag = (name: string, value: string | number | undefined) => (value === undefined ? [] : [name, String(value)]);
  return [
    ...flag("--data", tokenFile), ...flag("--steps", opts.steps), ...flag("--stop-after", opts.stopAfter),
    ...flag("--threads", opts.threads), ...flag("--seed", r.seed), ...flag("--lr", r.lr), ...flag("--min-lr", r.minLr),
    ...flag("--lr-schedule", r.lrSchedule), ...flag("--warmup-steps", r.warmupSteps), ...flag("--weight-decay", r.weightDecay),
    ...flag("--beta1", r.beta1), ...flag("--beta2", r.beta2), ...flag("--eps", r.eps), ...flag("--grad-clip", r.gradClip),
    ...flag("--init", opts.init), ...flag("--resume", opts.resume), ...flag("--save", opts.save),
    ...flag("--metrics", opts.metrics), ...flag("--host-memory", opts.hostMemory),
    ...flag("--save-every", opts.saveEvery), ...flag("--save-every-minutes", opts.saveEveryMinutes), ...flag("--keep", opts.keep),
    ...flag("--model-file", model?.modelPath), ...flag("--model-sha256", model?.modelSha256),
  ];
}

/**
 * mpirun, allowed to run as root (containers) and to start more ranks than cores, without pinning
 * each rank to one core: the ranks share the machine's cores, each with its own --threads.
 */
export function mpirunArgs(ranks: number, command: string[]): string[] {
  return ["--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", String(ranks), ...command];
}

const STEP_LINE = /^step (\d+)\/\d+ loss (\S+) lr \S+ (\S+) tok\/s$/;

/** Runs the job; returns rank 0's losses, one a step. */
export async function trainRanks(job: RankRun, opts: TrainOptions, log: (s: string) => void): Promise<number[]> {
  const child = spawn("mpirun", mpirunArgs(job.ranks, [job.trainBin, ...trainBinaryArgs(opts, job.tokenFile, job)]),
    { stdio: ["ignore", "pipe", "pipe"], detached: true });
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
  child.stdout.on("data", (chunk: Buffer) => {
    pending += chunk.toString("utf8");
    const lines = pending.split("\n");
    pending = lines.pop()!;
    for (const line of lines) {
      const m = STEP_LINE.exec(line);
      if (m) {
        progress.update({ step: Number(m[1]), loss: Number(m[2]), tokensPerSecond: Number(m[3]) });
        losses.push(Number(m[2]));
      }
      else if (line.trim()) others.push(line);
    }
  });
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
  const status = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on("error", (e: NodeJS.ErrnoException) => reject(e.code === "ENOENT"
      ? new UserError(`--tp ${job.ranks} starts its ranks with mpirun, which is not installed: ` +
        "install openmpi-bin (npm run setup does)")
      : e));
    child.on("close", (code, signal) => resolve({ code, signal }));
  }).finally(() => stop.dispose());
  progress.done();
  const saved = others.filter((l) => l.startsWith("saved ")).at(-1);
  if (stop.signal) {
    const failed = stderr.match(/^train: (.*)$/m)?.[1];
    throw new StoppedBySignal(`stopped by ${stop.signal}` + (saved ? `; ${saved} (continue with --resume ${opts.save})` :
      failed ? `; ${failed}` : "; nothing saved"), stop.signal);
  }
  if (status.code === EXIT_NOT_FINITE) throw new NonFiniteStateError(describeFailure(job.ranks, status, stderr));
  if (status.code !== 0) throw new UserError(describeFailure(job.ranks, status, stderr) + (saved ? `\n${saved}` : ""));
  for (const line of others)
    if (!line.startsWith("saved ")) log(line.replace(/^device high-water (\d+) bytes \(planned (\d+)\)/, "device high-water $1 bytes on rank 0 (planned $2)"));
  return losses;
}

/** One message for a failed job: the rank that failed or died, and why. */
export function describeFailure(ranks: number, status: { code: number | null; signal: string | null }, stderr: string): string {
  // A message may go on for lines (a library search lists where it looked), up to an empty line, another
  // rank's message or mpirun's own (its boxes of dashes, its [host:pid] lines).
  const failed = /train: rank (\d+) of \d+ failed: (.*(?:\n(?!train: |-{5}|\[)[^\n]+)*)/.exec(stderr);
  if (failed) {
    const stopped = failed[2].includes("\n") ? "\nThe other ranks were stopped." : "; the other ranks were stopped";
    return `rank ${failed[1]} of ${ranks} failed: ${failed[2]}${stopped}`;
  }
  const died = /process rank (\d+) with PID \d+ on node \S+ exited on signal (\d+) \(([^)]*)\)/.exec(stderr);
  if (died) return `rank ${died[1]} of ${ranks} died (signal ${died[2]}, ${died[3]}); the other ranks were stopped`;
  // Every rank refused the same flags or files before any step: one of their messages says it all.
  const refused = /^train: (.*)$/m.exec(stderr);
  if (refused) return refused[1];
  const how = status.signal ? `was killed by ${status.signal}` : `exited with code ${status.code}`;
  return `the tensor-parallel job of ${ranks} ranks ${how}:\n${stderr.trim()}`;
}
