// The benchmark's numbers: what was measured per config, what follows from it (achieved GFLOP/s, MFU,
// the speed ratio), and the targets checked against it. results.json is this, as JSON.
import { flopsPerToken, type BenchConfig } from "./configs.ts";
import type { SgemmPeak } from "./sgemm.ts";
import type { StowageResult } from "./stowage_step.ts";
import type { TorchResult } from "./torch_step.ts";

export interface Side {
  median_tokens_per_s: number;
  achieved_gflops: number; // flops_per_token * tokens/s
  mfu: number; // achieved / the measured sgemm peak
}

export type TorchSide = Omit<TorchResult, "parallel_info" | "config"> & Side;

export interface ConfigResult {
  config: BenchConfig;
  tokens_per_step: number;
  param_count: number;
  flops_per_token: number;
  speed_ratio: number; // Stowage / PyTorch (tuned environment) tokens per second: the stricter comparison
  stock_speed_ratio: number; // Stowage / PyTorch as installed: the peer, what the targets judge
  stowage: StowageResult & Side;
  pytorch: TorchSide; // in the benchmark's tuned environment, as Stowage
  pytorch_stock: TorchSide; // in the environment a user gets by default: the peer the issue names
}

/** The environment variables that change how OpenBLAS and OpenMP run, as one run saw them. */
const REPORTED_ENV = ["OPENBLAS_CORETYPE", "OMP_WAIT_POLICY", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"] as const;
export type EnvSummary = Record<(typeof REPORTED_ENV)[number], string | null>;

export function envSummary(env: NodeJS.ProcessEnv): EnvSummary {
  return Object.fromEntries(REPORTED_ENV.map((k) => [k, env[k] ?? null])) as EnvSummary;
}

export interface Target {
  config: string;
  target: string;
  measured: string;
  /** null: a comparison reported beside the targets, not one of them. */
  pass: boolean | null;
}

export interface BenchResults {
  date: string;
  machine: { cpu: string; cores: number; load_average_before: number[]; load_average_after: number[] };
  threads: number;
  env: EnvSummary; // the sgemm peak's, Stowage's and PyTorch's
  stock_env: EnvSummary; // PyTorch as installed
  /** Measured before and after the training runs; peak_gflops, the higher median, is MFU's denominator. */
  sgemm: { before: SgemmPeak; after: SgemmPeak; peak_gflops: number };
  torch: { version: string; openblas_core: string | null; parallel_info: string; config: string } | null;
  configs: ConfigResult[];
  targets: Target[];
}

export function configResult(
  c: BenchConfig,
  peakGflops: number,
  stowage: StowageResult,
  torch: TorchResult,
  stockTorch: TorchResult,
): ConfigResult {
  const flops = flopsPerToken(stowage.param_count, c.model);
  const side = (tokensPerS: number): Side => {
    const achieved = (flops * tokensPerS) / 1e9;
    return { median_tokens_per_s: tokensPerS, achieved_gflops: achieved, mfu: achieved / peakGflops };
  };
  const torchSide = ({ parallel_info: _info, config: _config, ...numbers }: TorchResult): TorchSide => ({
    ...numbers,
    ...side(numbers.median_tokens_per_s),
  });
  return {
    config: c,
    tokens_per_step: c.batch * c.model.seq,
    param_count: stowage.param_count,
    flops_per_token: flops,
    speed_ratio: stowage.median_tokens_per_s / torch.median_tokens_per_s,
    stock_speed_ratio: stowage.median_tokens_per_s / stockTorch.median_tokens_per_s,
    stowage: { ...stowage, ...side(stowage.median_tokens_per_s) },
    pytorch: torchSide(torch),
    pytorch_stock: torchSide(stockTorch),
  };
}

const MIN_SPEED_RATIO: Record<string, number> = { small: 3, "124M": 2 };
const MIN_MFU: Record<string, number> = { "124M": 0.55 };

/**
 * The targets, against the peer it names: Debian's python3-torch, eager, fp32, with the same
 * thread count, as installed. Beside each speed target, the same ratio against PyTorch given the tuned
 * environment (the OpenBLAS kernels Stowage uses), which no target judges.
 */
export function checkTargets(configs: ConfigResult[]): Target[] {
  const targets: Target[] = [];
  for (const r of configs) {
    const name = r.config.name;
    const ratio = MIN_SPEED_RATIO[name];
    if (ratio !== undefined) {
      targets.push({
        config: name,
        target: `Stowage tokens/s >= ${ratio}x PyTorch (Debian's python3-torch as installed)`,
        measured: `${r.stock_speed_ratio.toFixed(2)}x`,
        pass: r.stock_speed_ratio >= ratio,
      });
      targets.push({
        config: name,
        target: `(not a target) Stowage tokens/s against PyTorch with the same OpenBLAS kernels`,
        measured: `${r.speed_ratio.toFixed(2)}x`,
        pass: null,
      });
    }
    const mfu = MIN_MFU[name];
    if (mfu !== undefined) {
      targets.push({
        config: name,
        target: `Stowage MFU >= ${(mfu * 100).toFixed(0)}%`,
        measured: `${(r.stowage.mfu * 100).toFixed(1)}%`,
        pass: r.stowage.mfu >= mfu,
      });
    }
    const torchPeak = Math.min(r.pytorch.peak_rss_bytes, r.pytorch_stock.peak_rss_bytes);
    targets.push({
      config: name,
      target: "Stowage peak memory (arena + host) <= PyTorch peak RSS (the lower of its two runs)",
      measured: `${mib(r.stowage.peak_bytes)} vs ${mib(torchPeak)}`,
      pass: r.stowage.peak_bytes <= torchPeak,
    });
  }
  return targets;
}

export function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(0)} MiB`;
}
