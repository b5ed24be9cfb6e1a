// `npm run bench [-- CONFIG... checkpoint offload capacity capacity-targets planning fusion host-adamw disk-tier]`: the machine's sgemm peak, then for each config Stowage's and
// PyTorch's training step, one after the other in this process tree, and PyTorch once more as installed
// (the peer the targets judge; the tuned run is the stricter comparison beside it); then the checkpoint section (124M in each
// checkpoint mode), then the offload section (one GPT under shrinking device budgets) and the capacity run (the largest GPT
// that trains in 2 GiB of device and 20 GiB of host), then capacity-targets (stow capacity on GPU profiles, and the
// cpu prediction against measured steps), then planning (planning time by model size), then fusion (Llama fused and unfused), then host-adamw (the offloaded
// chunks' AdamW against the triad bandwidth), then disk-tier (the 1.5B preset in 2 GiB of device and 8 GiB of host,
// its model data on disk). Writes bench/RESULTS.md and bench/results.json, keeping a part that did not run.
// Not a test: it measures and reports, and fails only when something cannot run.
import { mkdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { UserError } from "../base/errors.ts";
import { setRuntimeEnv } from "../src/cli/runtime_env.ts";
import { runCheckpointSection, type CheckpointResults } from "./checkpoint.ts";
import { BENCH_THREADS, CHECKPOINT_CONFIG, CONFIGS, FUSION_CONFIG, OFFLOAD_CONFIG, type BenchConfig } from "./configs.ts";
import { type OffloadSection, runOffloadSection } from "./offload.ts";
import { runCapacitySection } from "./capacity.ts";
import { runCapacityTargetsSection } from "./capacity_targets.ts";
import { runPlanningSection } from "./planning.ts";
import { runFusionSection } from "./fusion.ts";
import { runHostAdamwSection } from "./host_adamw.ts";
import { runDiskTierSection } from "./disk_tier.ts";
import { runOverlapSection } from "./overlap.ts";
import { cpuModel, loadAverage } from "./machine.ts";
import { checkTargets, configResult, envSummary, type BenchResults } from "./results.ts";
import { noResults, readResults, writeResults } from "./results_file.ts";
import { measureSgemmPeak, type SgemmPeak } from "./sgemm.ts";
import { runStowage, type StowageResult } from "./stowage_step.ts";
import { writeBenchTokens } from "./tokens.ts";
import { runTorch, type TorchResult, type TorchSetup } from "./torch_step.ts";

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const WORK_DIR = path.join(BENCH_DIR, "..", "out", "bench");

const CHECKPOINT_SECTION = "checkpoint";
const OFFLOAD_SECTION = "offload";
const CAPACITY_SECTION = "capacity";
const CAPACITY_TARGETS_SECTION = "capacity-targets";
const PLANNING_SECTION = "planning";
const FUSION_SECTION = "fusion";
const HOST_ADAMW_SECTION = "host-adamw";
const DISK_TIER_SECTION = "disk-tier";
const OVERLAP_SECTION = "overlap";

/** What the arguments ask for: speed configs by name, and the checkpoint and offload sections; nothing means all. */
function selectParts(names: string[]): {
  configs: BenchConfig[];
  checkpoint: boolean;
  offload: boolean;
  capacity: boolean;
  capacityTargets: boolean;
  planning: boolean;
  fusion: boolean;
  hostAdamw: boolean;
  diskTier: boolean;
  overlap: boolean;
} {
  if (names.length === 0)
    return {
      configs: CONFIGS,
      checkpoint: true,
      offload: true,
      capacity: true,
      capacityTargets: true,
      planning: true,
      fusion: true,
      hostAdamw: true,
      diskTier: true,
      overlap: true,
    };
  const sections = [
    CHECKPOINT_SECTION,
    OFFLOAD_SECTION,
    CAPACITY_SECTION,
    CAPACITY_TARGETS_SECTION,
    PLANNING_SECTION,
    FUSION_SECTION,
    HOST_ADAMW_SECTION,
    DISK_TIER_SECTION,
    OVERLAP_SECTION,
  ];
  const configs = names
    .filter((n) => !sections.includes(n))
    .map((n) => {
      const c = CONFIGS.find((c) => c.name === n);
      const known = CONFIGS.map((c) => c.name).join(", ");
      if (!c) throw new UserError(`unknown config '${n}'; the configs are ${known}, and the sections ${sections.join(", ")}`);
      return c;
    });
  return {
    configs,
    checkpoint: names.includes(CHECKPOINT_SECTION),
    offload: names.includes(OFFLOAD_SECTION),
    capacity: names.includes(CAPACITY_SECTION),
    capacityTargets: names.includes(CAPACITY_TARGETS_SECTION),
    planning: names.includes(PLANNING_SECTION),
    fusion: names.includes(FUSION_SECTION),
    hostAdamw: names.includes(HOST_ADAMW_SECTION),
    diskTier: names.includes(DISK_TIER_SECTION),
    overlap: names.includes(OVERLAP_SECTION),
  };
}

/**
 * The environment a user's programs get by default (this process's, which the benchmark does not change),
 * with only the thread counts pinned, as for every run.
 */
function stockEnv(threads: number): NodeJS.ProcessEnv {
  const env = { ...process.env };
  env.OPENBLAS_NUM_THREADS ??= String(threads);
  env.OMP_NUM_THREADS ??= String(threads);
  return env;
}

/** One tuned environment for the three programs, so the sgemm peak, Stowage and PyTorch use the same BLAS. */
function tunedEnv(threads: number): NodeJS.ProcessEnv {
  const env = stockEnv(threads);
  setRuntimeEnv(env);
  return env;
}

function sgemmPeak(env: NodeJS.ProcessEnv): SgemmPeak {
  console.log(`sgemm peak (${BENCH_THREADS} threads)...`);
  const peak = measureSgemmPeak(BENCH_DIR, WORK_DIR, BENCH_THREADS, env);
  console.log(`  ${peak.median_gflops.toFixed(1)} GFLOP/s, OpenBLAS core ${peak.core}`);
  return peak;
}

function pytorch(c: BenchConfig, setup: TorchSetup, tokens: string, paramCount: number): TorchResult {
  console.log(`${c.name}: PyTorch, ${setup.name} environment (${setup.steps.warmupSteps} + ${setup.steps.measuredSteps} steps)...`);
  const torch = runTorch(c, setup, BENCH_THREADS, tokens, BENCH_DIR, WORK_DIR);
  console.log(`  ${torch.median_tokens_per_s.toFixed(0)} tokens/s, OpenBLAS core ${torch.openblas_core}`);
  if (torch.param_count !== paramCount) {
    throw new UserError(
      `${c.name}: PyTorch's model has ${torch.param_count} parameters, Stowage's ${paramCount}; they must be the same model`,
    );
  }
  return torch;
}

/** The speed part: each config's Stowage, tuned PyTorch and stock PyTorch runs, between two sgemm peaks. */
function speedPart(configs: BenchConfig[], env: NodeJS.ProcessEnv, stock: NodeJS.ProcessEnv): BenchResults {
  const loadBefore = loadAverage();
  const sgemmBefore = sgemmPeak(env);

  const runs: { c: BenchConfig; stowage: StowageResult; torch: TorchResult; stockTorch: TorchResult }[] = [];
  for (const c of configs) {
    const tokens = writeBenchTokens(WORK_DIR, c.model.vocab);
    console.log(`${c.name}: Stowage (compile, then ${c.warmupSteps} + ${c.measuredSteps} steps)...`);
    const stowage = runStowage(c, BENCH_THREADS, tokens, WORK_DIR, env);
    console.log(`  ${stowage.median_tokens_per_s.toFixed(0)} tokens/s`);
    const torch = pytorch(c, { name: "tuned", env, steps: c }, tokens, stowage.param_count);
    const stockTorch = pytorch(c, { name: "stock", env: stock, steps: c.stockTorchSteps }, tokens, stowage.param_count);
    runs.push({ c, stowage, torch, stockTorch });
  }
  // Measured again after the runs, and the higher median kept: a moment when other processes took the
  // cores would otherwise lower the peak and flatter the MFU.
  const sgemmAfter = sgemmPeak(env);
  const peakGflops = Math.max(sgemmBefore.median_gflops, sgemmAfter.median_gflops);
  const results = runs.map((r) => configResult(r.c, peakGflops, r.stowage, r.torch, r.stockTorch));
  const firstTorch = runs[0]?.torch;

  return {
    date: new Date().toISOString(),
    machine: { cpu: cpuModel(), cores: os.cpus().length, load_average_before: loadBefore, load_average_after: loadAverage() },
    threads: BENCH_THREADS,
    env: envSummary(env),
    stock_env: envSummary(stock),
    sgemm: { before: sgemmBefore, after: sgemmAfter, peak_gflops: peakGflops },
    torch: firstTorch
      ? {
          version: firstTorch.torch_version,
          openblas_core: firstTorch.openblas_core,
          parallel_info: firstTorch.parallel_info,
          config: firstTorch.config,
        }
      : null,
    configs: results,
    targets: checkTargets(results),
  };
}

/** The checkpoint part: 124M in each checkpoint mode, Stowage only. */
function checkpointPart(env: NodeJS.ProcessEnv): CheckpointResults {
  const tokens = writeBenchTokens(WORK_DIR, CHECKPOINT_CONFIG.model.vocab);
  return runCheckpointSection(CHECKPOINT_CONFIG, BENCH_THREADS, tokens, WORK_DIR, env);
}

/** The offload part: one GPT under shrinking device budgets, over an emulated link. */
function offloadPart(env: NodeJS.ProcessEnv): OffloadSection {
  const tokens = writeBenchTokens(WORK_DIR, OFFLOAD_CONFIG.model.vocab);
  return runOffloadSection(OFFLOAD_CONFIG, BENCH_THREADS, tokens, WORK_DIR, env);
}

function main(): void {
  const parts = selectParts(process.argv.slice(2));
  const env = tunedEnv(BENCH_THREADS);
  const stock = stockEnv(BENCH_THREADS);
  mkdirSync(WORK_DIR, { recursive: true });
  // Read before the runs, so that a results.json that cannot be kept fails now, not after them.
  const all =
    parts.configs.length > 0 &&
    parts.checkpoint &&
    parts.offload &&
    parts.capacity &&
    parts.capacityTargets &&
    parts.planning &&
    parts.fusion &&
    parts.hostAdamw &&
    parts.diskTier &&
    parts.overlap;
  const kept = all ? noResults() : readResults(BENCH_DIR);

  const speed = parts.configs.length > 0 ? speedPart(parts.configs, env, stock) : null;
  const checkpoint = parts.checkpoint ? checkpointPart(env) : null;
  const offload = parts.offload ? offloadPart(env) : null;
  const capacity = parts.capacity ? runCapacitySection(BENCH_THREADS, writeBenchTokens(WORK_DIR, 50257), WORK_DIR, env) : null;
  const capacityTargets = parts.capacityTargets ? runCapacityTargetsSection(BENCH_THREADS, WORK_DIR, env) : null;
  const planning = parts.planning ? runPlanningSection() : null;
  const fusion = parts.fusion
    ? runFusionSection(FUSION_CONFIG, BENCH_THREADS, writeBenchTokens(WORK_DIR, FUSION_CONFIG.model.vocab), WORK_DIR, env)
    : null;
  const hostAdamw = parts.hostAdamw ? runHostAdamwSection(BENCH_THREADS, WORK_DIR, env) : null;
  const diskTier = parts.diskTier ? runDiskTierSection(BENCH_THREADS, writeBenchTokens(WORK_DIR, 50257), WORK_DIR, env) : null;
  const overlap = parts.overlap ? runOverlapSection(writeBenchTokens(WORK_DIR, 8192), WORK_DIR, env) : null;
  const markdown = writeResults(
    BENCH_DIR,
    { speed, checkpoint, offload, capacity, capacityTargets, planning, fusion, hostAdamw, diskTier, overlap },
    kept,
  );
  console.log(`\n${markdown}`);
}

try {
  main();
} catch (error) {
  const message = error instanceof Error ? error.message : String(error);
  console.error(`bench: ${error instanceof UserError ? "" : "internal error: "}${message}`);
  process.exit(1);
}
