// The capacity section (`npm run bench -- capacity`): with --device-memory 2GiB --host-memory 20GiB,
// `stow capacity` finds the largest GPT of the 1.5B preset's width (more layers) whose plan fits; then
// that model trains for two steps (batch 1, seq 256) through the standalone binary. The target: at
// least 90% of the parameters 20 GiB holds at 16 bytes a parameter.
import { readFileSync } from "node:fs";
import path from "node:path";
import { readMetricsFile, runChild, runWithPeakRss } from "./child.ts";
import { loadAverage } from "./machine.ts";
import { type EnvSummary, envSummary } from "./results.ts";

export const CAPACITY = { deviceMemory: "2GiB", hostMemory: "20GiB", hostBytes: 20 * 2 ** 30, batch: 1, seq: 256, steps: 2 };
const BASE = [
  "samples/gpt2.ts",
  "--preset",
  "1.5B",
  "--target",
  "cpu",
  "--batch",
  String(CAPACITY.batch),
  "--seq",
  String(CAPACITY.seq),
  "--device-memory",
  CAPACITY.deviceMemory,
  "--host-memory",
  CAPACITY.hostMemory,
];

export interface CapacityResults {
  date: string;
  shape: Record<string, number>;
  layers: number;
  param_count: number;
  target_params: number; // 90% of host bytes / 16
  host_bytes_planned: number;
  arena_bytes: number;
  checkpoint: string;
  chunks: number;
  transfer_bytes_per_step: number;
  predicted_step_seconds: number;
  step_seconds: number[];
  losses: number[];
  device_peak_bytes: number;
  host_peak_bytes: number;
  peak_rss_bytes: number;
  threads: number;
  env: EnvSummary;
  load_average_before: number[];
}

export function runCapacitySection(threads: number, tokenFile: string, workDir: string, env: NodeJS.ProcessEnv): CapacityResults {
  const loadBefore = loadAverage();
  const found = JSON.parse(
    runChild("capacity: stow capacity", "npx", ["stow", "capacity", ...BASE, "--threads", String(threads), "--json"], env),
  );
  const config = found.largest.config as Record<string, number>;
  console.log(`capacity: the largest fitting is ${found.largest.label} (${found.largest.param_count} parameters)`);
  const sets = Object.entries(config).flatMap(([k, v]) => ["--set", `${k}=${v}`]);
  const dir = path.join(workDir, "capacity");
  runChild(
    "capacity: compile",
    "npx",
    ["stow", "compile", ...BASE, ...sets, "--checkpoint", "auto", "--threads", String(threads), "-o", dir],
    env,
  );
  const plan = JSON.parse(readFileSync(path.join(dir, "plan.json"), "utf8"));
  console.log(`capacity: training ${found.largest.label} (${plan.param_count} parameters) for ${CAPACITY.steps} steps...`);
  const metricsFile = path.join(dir, "metrics.jsonl");
  const { peakRssBytes } = runWithPeakRss(
    "capacity: train",
    path.join(dir, "train"),
    ["--data", tokenFile, "--steps", String(CAPACITY.steps), "--threads", String(threads), "--metrics", metricsFile, "--warmup-steps", "0"],
    env,
    path.join(dir, "time.txt"),
  );
  const metrics = readMetricsFile(metricsFile);
  return {
    date: new Date().toISOString(),
    shape: config,
    layers: config.layers,
    param_count: plan.param_count,
    target_params: Math.ceil((0.9 * CAPACITY.hostBytes) / 16),
    host_bytes_planned: plan.host_bytes,
    arena_bytes: plan.arena_bytes,
    checkpoint: plan.checkpoint.mode,
    chunks: plan.offload.chunks.length,
    transfer_bytes_per_step: plan.offload.transfer_bytes_per_step,
    predicted_step_seconds: plan.predicted_step.seconds,
    step_seconds: metrics.map((m) => m.step_seconds),
    losses: metrics.map((m) => m.loss),
    device_peak_bytes: Math.max(...metrics.map((m) => m.device_peak_bytes)),
    host_peak_bytes: Math.max(...metrics.map((m) => m.host_peak_bytes)),
    peak_rss_bytes: peakRssBytes,
    threads,
    env: envSummary(env),
    load_average_before: loadBefore,
  };
}
