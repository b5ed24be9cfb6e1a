// The offload section (`npm run bench -- offload`): one GPT trained under device budgets of 100%, 50%,
// 30% and 15% of its all-resident arena, over an emulated link (--link-gbps) set so that moving all its
// model data once (parameters, gradients and both AdamW moments: 16 bytes a parameter) takes as long as
// the all-resident step computes. For each budget: step time, bytes moved, how long compute waited, and
// step time / max(compute-only time, transfer time), where compute-only is the all-resident step and
// transfer time is the bytes moved over the link. 1.0 would be perfect overlap.
import type { BenchConfig } from "./configs.ts";
import { loadAverage } from "./machine.ts";
import { type EnvSummary, envSummary } from "./results.ts";
import { median } from "./stats.ts";
import { runStowage } from "./stowage_step.ts";

export const OFFLOAD_BUDGETS = [1, 0.5, 0.3, 0.15] as const;
/** The target the issue sets at 30%. */
export const OFFLOAD_TARGET_RATIO = 1.15;

export interface OffloadBudgetResult {
  share: number; // of the all-resident arena
  budget_bytes: number | null; // null: no budget (the all-resident run)
  arena_bytes: number; // the plan's
  device_peak_bytes: number; // measured
  predicted_device_peak_bytes: number;
  median_step_seconds: number;
  predicted_step_seconds: number;
  transfer_bytes: number;
  transfer_seconds: number; // transfer_bytes over the link
  median_wait_seconds: number;
  ratio: number; // median step / max(compute-only, transfer_seconds)
}

export interface OffloadResults {
  date: string;
  config: { name: string; model: BenchConfig["model"]; batch: number; checkpoint: string; grad_clip: number };
  threads: number;
  env: EnvSummary;
  param_count: number;
  link_gbps: number;
  compute_only_seconds: number;
  load_average_before: number[];
  load_average_after: number[];
  budgets: OffloadBudgetResult[];
}

/** Blocks checkpointing in every run, so that each budget computes the same FLOPs; no clipping, so AdamW overlaps. */
const CHECKPOINT = "blocks" as const;
const COMMON = ["--grad-clip", "0"];

export function runOffloadSection(
  c: BenchConfig, threads: number, tokenFile: string, workDir: string, env: NodeJS.ProcessEnv,
): OffloadResults {
  const date = new Date().toISOString();
  const loadBefore = loadAverage();
  console.log(`offload ${c.name}: all resident (compile, then ${c.warmupSteps} + ${c.measuredSteps} steps)...`);
  const resident = runStowage(c, threads, tokenFile, workDir, env, CHECKPOINT, { label: "offload-100", compileArgs: COMMON, trainArgs: COMMON });
  const computeOnly = median(resident.step_seconds);
  const linkBytesPerSecond = (16 * resident.param_count) / computeOnly;
  const linkGbps = (linkBytesPerSecond * 8) / 1e9;
  console.log(`  ${computeOnly.toFixed(3)} s/step; link set to ${linkGbps.toFixed(3)} Gbit/s`);

  const budgets = OFFLOAD_BUDGETS.map((share) => {
    const run = share === 1 ? resident : (() => {
      const budget = Math.floor(share * resident.arena_bytes);
      const link = ["--link-gbps", linkGbps.toFixed(6)];
      console.log(`offload ${c.name}: budget ${(share * 100).toFixed(0)}% = ${budget} bytes...`);
      const r = runStowage(c, threads, tokenFile, workDir, env, CHECKPOINT, {
        label: `offload-${Math.round(share * 100)}`, compileArgs: [...COMMON, "--device-memory", String(budget), ...link],
        trainArgs: [...COMMON, ...link],
      });
      return r;
    })();
    const seconds = median(run.step_seconds);
    const transferSeconds = run.transfer_bytes / linkBytesPerSecond;
    const result: OffloadBudgetResult = {
      share,
      budget_bytes: share === 1 ? null : Math.floor(share * resident.arena_bytes),
      arena_bytes: run.arena_bytes,
      device_peak_bytes: run.device_peak_bytes,
      predicted_device_peak_bytes: run.predicted_device_peak_bytes,
      median_step_seconds: seconds,
      predicted_step_seconds: run.predicted_step_seconds,
      transfer_bytes: run.transfer_bytes,
      transfer_seconds: transferSeconds,
      median_wait_seconds: median(run.transfer_wait_seconds),
      ratio: seconds / Math.max(computeOnly, transferSeconds),
    };
    console.log(`  ${seconds.toFixed(3)} s/step, ${(run.transfer_bytes / 2 ** 20).toFixed(1)} MiB moved, ratio ${result.ratio.toFixed(2)}`);
    return result;
  });
  return {
    date,
    config: { name: c.name, model: c.model, batch: c.batch, checkpoint: CHECKPOINT, grad_clip: 0 },
    threads,
    env: envSummary(env),
    param_count: resident.param_count,
    link_gbps: linkGbps,
    compute_only_seconds: computeOnly,
    load_average_before: loadBefore,
    load_average_after: loadAverage(),
    budgets,
  };
}
