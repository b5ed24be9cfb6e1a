// Stowage's side: compiles the config through the normal CLI path (`stow compile`, with `--checkpoint
// MODE` when one is given), runs the standalone train binary under GNU time, and reads its per-step
// metrics and the plan's predictions (plan.json).
import { readFileSync } from "node:fs";
import path from "node:path";
import type { Breakdown } from "../ir/passes/memory_plan.ts";
import type { CheckpointMode } from "../ir/passes/recompute.ts";
import { UserError } from "../base/errors.ts";
import { readMetricsFile, runChild, runWithPeakRss } from "./child.ts";
import type { BenchConfig } from "./configs.ts";
import { median } from "./stats.ts";

/** What plan.json says of checkpointing: the mode, and the FLOPs it recomputes of the step's total. */
export interface PlannedCheckpoint {
  mode: CheckpointMode;
  recompute_flops: number;
  step_flops: number; // the whole training step's, recomputation included
}

export interface StowageResult {
  param_count: number;
  predicted_device_peak_bytes: number; // the plan's prediction, for reference
  breakdown: Breakdown; // the plan's bytes at its predicted peak, by kind
  checkpoint: PlannedCheckpoint;
  tokens_per_s: number[]; // measured steps only
  median_tokens_per_s: number;
  step_seconds: number[]; // measured steps only
  device_peak_bytes: number; // arena high-water mark, measured
  host_peak_bytes: number; // tracked host allocations
  peak_bytes: number; // device + host
  peak_rss_bytes: number; // the process's, from GNU time
  h2d_bytes: number; // host to device, per measured step (the first's; every step moves the same)
  d2h_bytes: number; // device to host, likewise
  transfer_wait_seconds: number[]; // measured steps only
  arena_bytes: number; // the plan's device arena
  predicted_step_seconds: number; // the cost model's
}

interface StepMetrics {
  step: number;
  tokens_per_s: number;
  step_seconds: number;
  device_peak_bytes: number;
  host_peak_bytes: number;
  h2d_bytes: number;
  d2h_bytes: number;
  transfer_wait_seconds: number;
}

interface PlanJson {
  param_count: number;
  arena_bytes: number;
  predicted_step: { seconds: number };
  device_peak_bytes: number;
  breakdown: Breakdown;
  checkpoint: PlannedCheckpoint;
}

/** Flags beyond the config's, for a variant of a run (a checkpoint mode, a device budget). */
export interface RunVariant {
  /** Names the run in messages and its output directory. */
  label: string;
  compileArgs: string[];
  trainArgs: string[];
}

/** Compiles and runs one config; `checkpoint` adds `--checkpoint MODE`, `variant` any flags; each gets its own directory. */
export function runStowage(
  c: BenchConfig,
  threads: number,
  tokenFile: string,
  workDir: string,
  env: NodeJS.ProcessEnv,
  checkpoint?: CheckpointMode,
  variant?: RunVariant,
): StowageResult {
  const label = [checkpoint && `checkpoint-${checkpoint}`, variant?.label].filter(Boolean).join("-");
  const name = label ? `${c.name} ${label}` : c.name;
  const dir = path.join(workDir, label ? `stowage-${c.name}-${label}` : `stowage-${c.name}`);
  const sets = Object.entries(c.model).flatMap(([k, v]) => ["--set", `${k}=${v}`]);
  runChild(
    `stowage ${name}: compile`,
    "npx",
    [
      "stow",
      "compile",
      c.modelFile ?? "samples/gpt2.ts",
      ...sets,
      "--batch",
      String(c.batch),
      "--seq",
      String(c.model.seq),
      "--threads",
      String(threads),
      ...(checkpoint ? ["--checkpoint", checkpoint] : []),
      ...(variant?.compileArgs ?? []),
      "-o",
      dir,
    ],
    env,
  );
  const plan = JSON.parse(readFileSync(path.join(dir, "plan.json"), "utf8")) as PlanJson;

  const metricsFile = path.join(dir, "metrics.jsonl");
  const steps = c.warmupSteps + c.measuredSteps;
  const { peakRssBytes } = runWithPeakRss(
    `stowage ${name}: train`,
    path.join(dir, "train"),
    ["--data", tokenFile, "--steps", String(steps), "--threads", String(threads), "--metrics", metricsFile, ...(variant?.trainArgs ?? [])],
    env,
    path.join(dir, "time.txt"),
  );

  const metrics = readMetricsFile<StepMetrics>(metricsFile);
  if (metrics.length !== steps) throw new UserError(`stowage ${name}: ${metricsFile} has ${metrics.length} steps, expected ${steps}`);
  const measured = metrics.slice(c.warmupSteps);
  const tokensPerS = measured.map((m) => m.tokens_per_s);
  const device = Math.max(...metrics.map((m) => m.device_peak_bytes));
  const host = Math.max(...metrics.map((m) => m.host_peak_bytes));
  const { mode, recompute_flops, step_flops } = plan.checkpoint;
  return {
    param_count: plan.param_count,
    predicted_device_peak_bytes: plan.device_peak_bytes,
    breakdown: plan.breakdown,
    checkpoint: { mode, recompute_flops, step_flops },
    tokens_per_s: tokensPerS,
    median_tokens_per_s: median(tokensPerS),
    step_seconds: measured.map((m) => m.step_seconds),
    device_peak_bytes: device,
    host_peak_bytes: host,
    peak_bytes: device + host,
    peak_rss_bytes: peakRssBytes,
    h2d_bytes: measured[0].h2d_bytes,
    d2h_bytes: measured[0].d2h_bytes,
    transfer_wait_seconds: measured.map((m) => m.transfer_wait_seconds),
    arena_bytes: plan.arena_bytes,
    predicted_step_seconds: plan.predicted_step.seconds,
  };
}
