// The disk-tier section (`npm run bench -- disk-tier`): a GPT at the 1.5B GPT-2 preset's width with 50
// layers (1.62B parameters), whose model data (16 bytes a parameter) is three times the host cap, trains
// for two steps with --device-memory 2GiB
// --host-memory 8GiB and the disk tier in the benchmark's work folder. It reports the plan's disk bytes and
// its predicted step (on the measured cpu target, whose probe also measures the folder's disk), the
// measured steps, losses, disk bytes, device peak and the process's peak RSS, and the bound: a step
// within 1.25 x max(compute, disk bytes / measured disk bandwidth).
import { type DiskIoResults, measureDiskIo } from "./disk_io.ts";
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { cpuTarget } from "../src/targets/cpu_target.ts";
import { readMetricsFile, runChild, runWithPeakRss } from "./child.ts";
import { loadAverage } from "./machine.ts";
import { type EnvSummary, envSummary } from "./results.ts";

export const DISK_TIER = {
  preset: "1.5B",
  layers: 50,
  deviceMemory: "2GiB",
  deviceBytes: 2 * 2 ** 30,
  hostMemory: "8GiB",
  hostBytes: 8 * 2 ** 30,
  diskMemory: "64GiB",
  batch: 1,
  seq: 64,
  steps: 2,
};

export interface DiskTierResults {
  date: string;
  param_count: number;
  model_data_bytes: number; // 16 bytes a parameter
  host_bytes_planned: number;
  arena_bytes: number;
  disk_bytes: number;
  moments_on_disk: number;
  grads_on_disk: number;
  params_on_disk: number;
  staging_bytes: number;
  disk_read_bytes_planned: number;
  disk_write_bytes_planned: number;
  disk_read_bandwidth: number;
  disk_write_bandwidth: number;
  predicted_step_seconds: number;
  predicted_compute_seconds: number;
  step_seconds: number[];
  // Per step, how long compute waited for the link, host AdamW and the disk (the drain after the backward included).
  transfer_wait_seconds?: number[];
  losses: number[];
  disk_read_bytes: number[];
  disk_write_bytes: number[];
  device_peak_bytes: number;
  host_peak_bytes: number;
  peak_rss_bytes: number;
  threads: number;
  env: EnvSummary;
  load_average_before: number[];
  disk_io?: DiskIoResults; // the tier's I/O against io_uring, measured after training
}

export function runDiskTierSection(threads: number, tokenFile: string, workDir: string, env: NodeJS.ProcessEnv): DiskTierResults {
  const loadBefore = loadAverage();
  const dir = path.join(workDir, "disk-tier");
  const tier = path.join(dir, "tier");
  mkdirSync(tier, { recursive: true });
  const budgets = [
    "--device-memory",
    DISK_TIER.deviceMemory,
    "--host-memory",
    DISK_TIER.hostMemory,
    "--disk-memory",
    DISK_TIER.diskMemory,
    "--disk-path",
    tier,
  ];
  const model = [
    "samples/gpt2.ts",
    "--preset",
    DISK_TIER.preset,
    "--set",
    `layers=${DISK_TIER.layers}`,
    "--batch",
    String(DISK_TIER.batch),
    "--seq",
    String(DISK_TIER.seq),
  ];
  const common = [...model, ...budgets, "--target", "cpu", "--threads", String(threads)];
  runChild("disk-tier: compile", "npx", ["stow", "compile", ...common, "-o", dir], env);
  const plan = JSON.parse(readFileSync(path.join(dir, "plan.json"), "utf8"));
  // The compile measured the machine and the folder's disk; this reads that measurement back.
  const { machine } = cpuTarget({ threads, env, diskPath: tier });
  console.log(`disk-tier: training ${plan.param_count} parameters for ${DISK_TIER.steps} steps...`);
  const metricsFile = path.join(dir, "metrics.jsonl");
  rmSync(metricsFile, { force: true });
  const { peakRssBytes } = runWithPeakRss(
    "disk-tier: train",
    path.join(dir, "train"),
    [
      "--data",
      tokenFile,
      "--steps",
      String(DISK_TIER.steps),
      "--threads",
      String(threads),
      "--metrics",
      metricsFile,
      "--warmup-steps",
      "0",
      "--disk-path",
      tier,
    ],
    env,
    path.join(dir, "time.txt"),
  );
  const metrics = readMetricsFile(metricsFile);
  const diskIo = measureDiskIo(tier, dir, env);
  return {
    date: new Date().toISOString(),
    param_count: plan.param_count,
    model_data_bytes: 16 * plan.param_count,
    host_bytes_planned: plan.host_bytes,
    arena_bytes: plan.arena_bytes,
    disk_bytes: plan.disk.bytes,
    moments_on_disk: plan.disk.moments_on_disk,
    grads_on_disk: plan.disk.grads_on_disk,
    params_on_disk: plan.disk.params_on_disk,
    staging_bytes: plan.disk.staging_bytes,
    disk_read_bytes_planned: plan.disk.read_bytes_per_step,
    disk_write_bytes_planned: plan.disk.write_bytes_per_step,
    disk_read_bandwidth: machine.diskReadBandwidth ?? 0,
    disk_write_bandwidth: machine.diskWriteBandwidth ?? 0,
    predicted_step_seconds: plan.predicted_step.seconds,
    predicted_compute_seconds: plan.predicted_step.compute_seconds,
    step_seconds: metrics.map((m) => m.step_seconds),
    transfer_wait_seconds: metrics.map((m) => m.transfer_wait_seconds),
    losses: metrics.map((m) => m.loss),
    disk_read_bytes: metrics.map((m) => m.disk_read_bytes),
    disk_write_bytes: metrics.map((m) => m.disk_write_bytes),
    device_peak_bytes: Math.max(...metrics.map((m) => m.device_peak_bytes)),
    host_peak_bytes: Math.max(...metrics.map((m) => m.host_peak_bytes)),
    peak_rss_bytes: peakRssBytes,
    threads,
    env: envSummary(env),
    load_average_before: loadBefore,
    disk_io: diskIo,
  };
}
