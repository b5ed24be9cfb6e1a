// PyTorch's side: runs bench/torch_step.py with Debian's python3 (the one with python3-torch) under GNU
// time, with the same environment (OpenBLAS kernels, OpenMP wait policy, threads) as Stowage's run.
import { existsSync } from "node:fs";
import path from "node:path";
import { UserError } from "../src/cli/errors.ts";
import { lastJsonLine, runWithPeakRss } from "./child.ts";
import type { BenchConfig } from "./configs.ts";

const PYTHON = "/usr/bin/python3";

export interface TorchResult {
  tokens_per_s: number[];
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
  c: BenchConfig, threads: number, tokenFile: string, benchDir: string, workDir: string, env: NodeJS.ProcessEnv,
): TorchResult {
  if (!existsSync(PYTHON)) throw new UserError(`pytorch ${c.name}: ${PYTHON} is missing (npm run setup installs python3-torch)`);
  const { stdout, peakRssBytes } = runWithPeakRss(`pytorch ${c.name} (needs python3-torch: npm run setup)`, PYTHON, [
    path.join(benchDir, "torch_step.py"), "--data", tokenFile, "--config", JSON.stringify(c.model),
    "--batch", String(c.batch), "--seq", String(c.model.seq), "--warmup", String(c.warmupSteps),
    "--steps", String(c.measuredSteps), "--threads", String(threads),
  ], env, path.join(workDir, `torch-${c.name}-time.txt`));
  const r = lastJsonLine<Omit<TorchResult, "time_peak_rss_bytes">>(`pytorch ${c.name}`, stdout);
  return { ...r, time_peak_rss_bytes: peakRssBytes };
}
