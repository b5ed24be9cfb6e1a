// The offload section (`npm run bench -- offload`): one GPT trained under device budgets of 100%, 50%,
// 30% and 15% of its all-resident arena, over an emulated link (--link-gbps) set so that moving all its
// model data once (parameters, gradients and both AdamW moments: 16 bytes a parameter) takes as long as
// the all-resident step computes. For each budget: step time, bytes moved, how long compute waited, and
// step time / max(compute-only time, transfer time), where compute-only is the all-resident step and
// transfer time is how long the busier direction of the (full-duplex) link is busy. 1.0 would be perfect
// overlap.
//
// The section runs twice. On a GPU the device computes on its own silicon while the host's cores run
// AdamW for offloaded chunks and drive the copies; the CPU backend plays both on one machine's cores. The
// judged run gives the device's compute one thread fewer than the machine has (its compute-only time
// measured the same way), leaving a core to the transfer engine's threads, as a real host has. The second
// run gives compute every core, shared with the transfer engine, for comparison: what overlap costs when
// device and host contend for the same cores.
import type { BenchConfig } from "./configs.ts";
import { loadAverage } from "./machine.ts";
import { type EnvSummary, envSummary } from "./results.ts";
import { median } from "./stats.ts";
import { type StowageResult, runStowage } from "./stowage_step.ts";

export const OFFLOAD_BUDGETS = [1, 0.5, 0.3, 0.15] as const;
/** The target the issue sets at 30%. */
export const OFFLOAD_TARGET_RATIO = 1.15;
const OFFLOAD_ROUNDS = 3;

export interface OffloadBudgetResult {
  share: number; // of the all-resident arena
  budget_bytes: number | null; // null: no budget (the all-resident run)
  arena_bytes: number; // the plan's
  device_peak_bytes: number; // measured
  predicted_device_peak_bytes: number;
  median_step_seconds: number;
  predicted_step_seconds: number;
  h2d_bytes: number;
  d2h_bytes: number;
  transfer_seconds: number; // the busier direction's bytes over the link
  median_wait_seconds: number;
  ratio: number; // median step / max(compute-only, transfer_seconds)
}

export interface OffloadResults {
  date: string;
  /** Whether the transfer engine's threads had a core to themselves (the device computing on the others). */
  separate_cores: boolean;
  config: { name: string; model: BenchConfig["model"]; batch: number; checkpoint: string; grad_clip: number };
  threads: number;
  env: EnvSummary;
  param_count: number;
  link_gbps: number;
  compute_only_seconds: number; // the all-resident step, pooled over the rounds
  rounds: number;
  load_average_before: number[];
  load_average_after: number[];
  budgets: OffloadBudgetResult[];
}

/** Blocks checkpointing in every run, so that each budget computes the same FLOPs; no clipping, so AdamW overlaps. */
const CHECKPOINT = "blocks" as const;
const COMMON = ["--grad-clip", "0"];

/** The judged run (the host's work on a core of its own) and the run with every core shared. */
export interface OffloadSection {
  separate: OffloadResults;
  shared: OffloadResults;
}

export function runOffloadSection(
  c: BenchConfig,
  machineThreads: number,
  tokenFile: string,
  workDir: string,
  env: NodeJS.ProcessEnv,
): OffloadSection {
  const withThreads = (threads: number) => ({ ...env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads) });
  const separateThreads = Math.max(1, machineThreads - 1);
  return {
    separate: runOffloadBudgets(c, separateThreads, true, tokenFile, workDir, withThreads(separateThreads)),
    shared: runOffloadBudgets(c, machineThreads, false, tokenFile, workDir, withThreads(machineThreads)),
  };
}

function runOffloadBudgets(
  c: BenchConfig,
  threads: number,
  separateCores: boolean,
  tokenFile: string,
  workDir: string,
  env: NodeJS.ProcessEnv,
): OffloadResults {
  const date = new Date().toISOString();
  const cores = separateCores ? "separate" : "shared";
  const loadBefore = loadAverage();
  console.log(
    `offload ${c.name}, ${threads} compute threads (${cores} cores): all resident (compile, then ${c.warmupSteps} + ${c.measuredSteps} steps)...`,
  );
  const resident = runStowage(c, threads, tokenFile, workDir, env, CHECKPOINT, {
    label: `offload-${cores}-100`,
    compileArgs: COMMON,
    trainArgs: COMMON,
  });
  const computeOnly = median(resident.step_seconds);
  const linkBytesPerSecond = (16 * resident.param_count) / computeOnly;
  const linkGbps = (linkBytesPerSecond * 8) / 1e9;
  console.log(`  ${computeOnly.toFixed(3)} s/step; link set to ${linkGbps.toFixed(3)} Gbit/s (from this first run)`);

  // Rounds, each running every budget once, so that a machine that speeds up or slows down over the
  // minutes (it is shared) shifts every budget alike; each budget's steps from all rounds are pooled.
  const runBudget = (share: number) => {
    if (share === 1)
      return runStowage(c, threads, tokenFile, workDir, env, CHECKPOINT, {
        label: `offload-${cores}-100`,
        compileArgs: COMMON,
        trainArgs: COMMON,
      });
    const budget = Math.floor(share * resident.arena_bytes);
    const link = ["--link-gbps", linkGbps.toFixed(6)];
    return runStowage(c, threads, tokenFile, workDir, env, CHECKPOINT, {
      label: `offload-${cores}-${Math.round(share * 100)}`,
      compileArgs: [...COMMON, "--device-memory", String(budget), ...link],
      trainArgs: [...COMMON, ...link],
    });
  };
  const runs = new Map<number, StowageResult[]>(OFFLOAD_BUDGETS.map((share) => [share, []]));
  for (let round = 1; round <= OFFLOAD_ROUNDS; round++)
    for (const share of OFFLOAD_BUDGETS) {
      console.log(`offload ${c.name} (${cores} cores): round ${round} of ${OFFLOAD_ROUNDS}, budget ${Math.round(share * 100)}%...`);
      runs.get(share)!.push(runBudget(share));
    }
  const pooled = (share: number, key: "step_seconds" | "transfer_wait_seconds") => runs.get(share)!.flatMap((r) => r[key]);
  const computeSeconds = median(pooled(1, "step_seconds"));
  const budgets = OFFLOAD_BUDGETS.map((share) => {
    const run = runs.get(share)!.at(-1)!;
    const seconds = median(pooled(share, "step_seconds"));
    const transferSeconds = Math.max(run.h2d_bytes, run.d2h_bytes) / linkBytesPerSecond;
    const result: OffloadBudgetResult = {
      share,
      budget_bytes: share === 1 ? null : Math.floor(share * resident.arena_bytes),
      arena_bytes: run.arena_bytes,
      device_peak_bytes: Math.max(...runs.get(share)!.map((r) => r.device_peak_bytes)),
      predicted_device_peak_bytes: run.predicted_device_peak_bytes,
      median_step_seconds: seconds,
      predicted_step_seconds: run.predicted_step_seconds,
      h2d_bytes: run.h2d_bytes,
      d2h_bytes: run.d2h_bytes,
      transfer_seconds: transferSeconds,
      median_wait_seconds: median(pooled(share, "transfer_wait_seconds")),
      ratio: seconds / Math.max(computeSeconds, transferSeconds),
    };
    console.log(
      `  ${Math.round(share * 100)}%: ${seconds.toFixed(3)} s/step, ${(run.h2d_bytes / 2 ** 20).toFixed(1)} MiB in, ${(run.d2h_bytes / 2 ** 20).toFixed(1)} MiB out, ratio ${result.ratio.toFixed(2)}`,
    );
    return result;
  });
  return {
    date,
    separate_cores: separateCores,
    config: { name: c.name, model: c.model, batch: c.batch, checkpoint: CHECKPOINT, grad_clip: 0 },
    threads,
    env: envSummary(env),
    param_count: resident.param_count,
    link_gbps: linkGbps,
    compute_only_seconds: computeSeconds,
    rounds: OFFLOAD_ROUNDS,
    load_average_before: loadBefore,
    load_average_after: loadAverage(),
    budgets,
  };
}
