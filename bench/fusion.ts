// The fusion section: one Llama (the model whose RMSNorm, SwiGLU and their gradients fusion groups)
// compiled twice, fused (the default) and with `--fusion off`, each trained by its train binary one after
// the other; what fusion saves by the plan's counts (kernels per step, elementwise bytes) and what it
// changes in the measured step time, and whether the two runs' losses are the same bits.
import { readFileSync } from "node:fs";
import path from "node:path";
import { type BenchConfig, type StepCounts } from "./configs.ts";
import { loadAverage } from "./machine.ts";
import { envSummary, type EnvSummary } from "./results.ts";
import { median } from "./stats.ts";
import { runStowage, type StowageResult } from "./stowage_step.ts";

/** plan.json's `fusion` (src/driver/plan_report.ts). */
export interface PlannedFusion {
  enabled: boolean;
  groups: number;
  kernels_per_step: number;
  kernels_saved: number;
  elementwise_bytes: number;
  bytes_saved: number;
}

export interface FusionRun {
  fusion: "on" | "off";
  stowage: StowageResult;
  planned: PlannedFusion;
  median_step_seconds: number;
  losses: number[];
}

export interface FusionResults {
  date: string;
  config: { name: string; modelFile: string; model: BenchConfig["model"]; batch: number };
  steps: StepCounts;
  threads: number;
  env: EnvSummary;
  load_average_before: number[];
  load_average_after: number[];
  runs: FusionRun[];
  /** Every step's loss bitwise equal between the two runs. */
  losses_equal: boolean;
  /** Median step time fused over unfused, minus one. */
  step_time_change: number;
}

function runDir(workDir: string, c: BenchConfig, label: string): string {
  return path.join(workDir, `stowage-${c.name}-${label}`);
}

export function runFusionSection(
  c: BenchConfig,
  threads: number,
  tokenFile: string,
  workDir: string,
  env: NodeJS.ProcessEnv,
): FusionResults {
  const date = new Date().toISOString();
  const loadBefore = loadAverage();
  const runs = (["on", "off"] as const).map((fusion): FusionRun => {
    const label = `fusion-${fusion}`;
    console.log(`${c.name} --fusion ${fusion}: Stowage (compile, then ${c.warmupSteps} + ${c.measuredSteps} steps)...`);
    const stowage = runStowage(c, threads, tokenFile, workDir, env, undefined, { label, compileArgs: ["--fusion", fusion], trainArgs: [] });
    const dir = runDir(workDir, c, label);
    const plan = JSON.parse(readFileSync(path.join(dir, "plan.json"), "utf8")) as { fusion: PlannedFusion };
    const losses = readFileSync(path.join(dir, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => (JSON.parse(l) as { loss: number }).loss);
    console.log(`  ${median(stowage.step_seconds).toFixed(3)} s/step, ${plan.fusion.kernels_per_step} kernels per step`);
    return { fusion, stowage, planned: plan.fusion, median_step_seconds: median(stowage.step_seconds), losses };
  });
  const [on, off] = runs;
  return {
    date,
    config: { name: c.name, modelFile: c.modelFile ?? "samples/gpt2.ts", model: c.model, batch: c.batch },
    steps: { warmupSteps: c.warmupSteps, measuredSteps: c.measuredSteps },
    threads,
    env: envSummary(env),
    load_average_before: loadBefore,
    load_average_after: loadAverage(),
    runs,
    losses_equal: on.losses.length === off.losses.length && on.losses.every((l, i) => Object.is(l, off.losses[i])),
    step_time_change: on.median_step_seconds / off.median_step_seconds - 1,
  };
}
