// Stowage's side: compiles the config through the normal CLI path (`stow compile`), runs the standalone
// train binary under GNU time, and reads its per-step metrics.
import { readFileSync } from "node:fs";
import path from "node:path";
import { UserError } from "../src/cli/errors.ts";
import { runChild, runWithPeakRss } from "./child.ts";
import type { BenchConfig } from "./configs.ts";
import { median } from "./stats.ts";

export interface StowageResult {
  param_count: number;
  predicted_device_peak_bytes: number; // the plan's prediction, for reference
  tokens_per_s: number[]; // measured steps only
  median_tokens_per_s: number;
  device_peak_bytes: number; // arena high-water mark, measured
  host_peak_bytes: number; // tracked host allocations
  peak_bytes: number; // device + host
  peak_rss_bytes: number; // the process's, from GNU time
}

interface StepMetrics {
  step: number;
  tokens_per_s: number;
  device_peak_bytes: number;
  host_peak_bytes: number;
}

export function runStowage(
  c: BenchConfig, threads: number, tokenFile: string, workDir: string, env: NodeJS.ProcessEnv,
): StowageResult {
  const dir = path.join(workDir, `stowage-${c.name}`);
  const sets = Object.entries(c.model).flatMap(([k, v]) => ["--set", `${k}=${v}`]);
  runChild(`stowage ${c.name}: compile`, "npx", [
    "stow", "compile", "samples/gpt2.ts", ...sets,
    "--batch", String(c.batch), "--seq", String(c.model.seq), "--threads", String(threads), "-o", dir,
  ], env);
  const plan = JSON.parse(readFileSync(path.join(dir, "plan.json"), "utf8")) as
    { param_count: number; device_peak_bytes: number };

  const metricsFile = path.join(dir, "metrics.jsonl");
  const steps = c.warmupSteps + c.measuredSteps;
  const { peakRssBytes } = runWithPeakRss(`stowage ${c.name}: train`, path.join(dir, "train"), [
    "--data", tokenFile, "--steps", String(steps), "--threads", String(threads), "--metrics", metricsFile,
  ], env, path.join(dir, "time.txt"));

  const metrics = readFileSync(metricsFile, "utf8").trim().split("\n").map((l) => JSON.parse(l) as StepMetrics);
  if (metrics.length !== steps) throw new UserError(`stowage ${c.name}: ${metricsFile} has ${metrics.length} steps, expected ${steps}`);
  const measured = metrics.slice(c.warmupSteps).map((m) => m.tokens_per_s);
  const device = Math.max(...metrics.map((m) => m.device_peak_bytes));
  const host = Math.max(...metrics.map((m) => m.host_peak_bytes));
  return {
    param_count: plan.param_count,
    predicted_device_peak_bytes: plan.device_peak_bytes,
    tokens_per_s: measured,
    median_tokens_per_s: median(measured),
    device_peak_bytes: device,
    host_peak_bytes: host,
    peak_bytes: device + host,
    peak_rss_bytes: peakRssBytes,
  };
}
