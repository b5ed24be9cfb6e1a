// PyTorch's side: runs bench/torch_step.py with Debian's python3 (the one with python3-torch) under GNU
// time, in a given environment: the benchmark's tuned one (the same OpenBLAS kernels, OpenMP wait policy
// and threads as Stowage's run), or the one a user gets as installed.
import { existsSync } from "node:fs";
import path from "node:path";
import { UserError } from "../base/errors.ts";
import { lastJsonLine, runWithPeakRss } from "./child.ts";
import type { BenchConfig, StepCounts } from "./configs.ts";

const PYTHON = "/usr/bin/python3";

/** One way to run PyTorch: a name for messages and file names, its environment and its step counts. */
export interface TorchSetup {
  name: string;
  env: NodeJS.ProcessEnv;
  steps: StepCounts;
}

export interface TorchResult {
  warmup_steps: number;
  tokens_per_s: number[]; // measured steps only
  median_tokens_per_s: number;
  param_count: number;
  peak_rss_bytes: number; // getrusage(RUSAGE_SELF).ru_maxrss, from inside the process
  time_peak_rss_bytes: number; // the same, from GNU time, as a cross-check
  torch_version: string;
  threads: number;
  openblas_core: string | null;
  parallel_info: string;
  config: string;
}

export function runTorch(
  c: BenchConfig,
  setup: TorchSetup,
  threads: number,
  tokenFile: string,
  benchDir: string,
  workDir: string,
): TorchResult {
  const what = `pytorch ${c.name} (${setup.name})`;
  if (!existsSync(PYTHON)) throw new UserError(`${what}: ${PYTHON} is missing (npm run setup installs python3-torch)`);
  const { stdout, peakRssBytes } = runWithPeakRss(
    `${what} (needs python3-torch: npm run setup)`,
    PYTHON,
    [
      path.join(benchDir, "torch_step.py"),
      "--data",
      tokenFile,
      "--config",
      JSON.stringify(c.model),
      "--batch",
      String(c.batch),
      "--seq",
      String(c.model.seq),
      "--warmup",
      String(setup.steps.warmupSteps),
      "--steps",
      String(setup.steps.measuredSteps),
      "--threads",
      String(threads),
    ],
    setup.env,
    path.join(workDir, `torch-${c.name}-${setup.name}-time.txt`),
  );
  const r = lastJsonLine<Omit<TorchResult, "warmup_steps" | "time_peak_rss_bytes">>(what, stdout);
  return { ...r, warmup_steps: setup.steps.warmupSteps, time_peak_rss_bytes: peakRssBytes };
}
