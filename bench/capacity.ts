// The capacity section (`npm run bench -- capacity`): with --device-memory 2GiB --host-memory 20GiB,
// the largest GPT of one width (more layers at dim 1536) whose plan fits, found by bisection on the
// layer count with `stow plan`; then that model trains for two steps (batch 1, seq 256) through the
// standalone binary. The target: at least 90% of the parameters 20 GiB holds at 16 bytes a parameter.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { UserError } from "../src/cli/errors.ts";
import { runChild, runWithPeakRss } from "./child.ts";
import { loadAverage } from "./machine.ts";
import { type EnvSummary, envSummary } from "./results.ts";

export const CAPACITY = { deviceMemory: "2GiB", hostMemory: "20GiB", hostBytes: 20 * 2 ** 30, batch: 1, seq: 256, steps: 2 };
const SHAPE = { vocab: 50257, seq: 256, dim: 1536, heads: 12 };
const MAX_LAYERS = 64;

export interface CapacityResults {
  date: string;
  shape: typeof SHAPE;
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

function modelArgs(layers: number): string[] {
  const sets = Object.entries({ ...SHAPE, layers }).flatMap(([k, v]) => ["--set", `${k}=${v}`]);
  return ["samples/gpt2.ts", ...sets, "--batch", String(CAPACITY.batch), "--seq", String(CAPACITY.seq),
    "--device-memory", CAPACITY.deviceMemory, "--host-memory", CAPACITY.hostMemory, "--checkpoint", "auto"];
}

/** The plan's JSON when it fits; undefined when stow says it does not (exit 2). */
function planIfFits(layers: number, threads: number, env: NodeJS.ProcessEnv): Record<string, unknown> | undefined {
  const r = spawnSync("npx", ["stow", "plan", ...modelArgs(layers), "--threads", String(threads), "--json"],
    { env, encoding: "utf8", maxBuffer: 1024 * 1024 * 1024 });
  if (r.status === 2) return undefined;
  if (r.status !== 0) throw new UserError(`capacity: stow plan with ${layers} layers failed: ${r.stderr.trim().split("\n").slice(-5).join("\n")}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

export function runCapacitySection(threads: number, tokenFile: string, workDir: string, env: NodeJS.ProcessEnv): CapacityResults {
  const loadBefore = loadAverage();
  // Bisection: memory grows with every layer.
  let [lo, hi] = [0, MAX_LAYERS + 1]; // lo fits (0: nothing yet), hi does not
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    const fits = planIfFits(mid, threads, env) !== undefined;
    console.log(`capacity: ${mid} layers ${fits ? "fit" : "do not fit"}`);
    if (fits) lo = mid;
    else hi = mid;
  }
  if (lo === 0) throw new UserError("capacity: not even one layer fits");
  const dir = path.join(workDir, "capacity");
  runChild("capacity: compile", "npx", ["stow", "compile", ...modelArgs(lo), "--threads", String(threads), "-o", dir], env);
  const plan = JSON.parse(readFileSync(path.join(dir, "plan.json"), "utf8"));
  console.log(`capacity: training ${lo} layers (${plan.param_count} parameters) for ${CAPACITY.steps} steps...`);
  const metricsFile = path.join(dir, "metrics.jsonl");
  const { peakRssBytes } = runWithPeakRss("capacity: train", path.join(dir, "train"), [
    "--data", tokenFile, "--steps", String(CAPACITY.steps), "--threads", String(threads), "--metrics", metricsFile,
    "--warmup-steps", "0",
  ], env, path.join(dir, "time.txt"));
  const metrics = readFileSync(metricsFile, "utf8").trim().split("\n").map((l) => JSON.parse(l));
  return {
    date: new Date().toISOString(),
    shape: SHAPE,
    layers: lo,
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
