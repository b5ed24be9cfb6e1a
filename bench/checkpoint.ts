// The checkpoint section: the 124M config compiled and trained once per checkpoint mode, one after the
// other, and what each mode costs (recomputed FLOPs, measured step time against `none` in the same run)
// and saves (the predicted and measured arena peak, the activation memory at the peak).
import type { CheckpointMode } from "../ir/passes/recompute.ts";
import { CHECKPOINT_MODES_BENCHED, type BenchConfig, type StepCounts } from "./configs.ts";
import { loadAverage } from "./machine.ts";
import { envSummary, type EnvSummary } from "./results.ts";
import { median } from "./stats.ts";
import { runStowage, type StowageResult } from "./stowage_step.ts";

export interface CheckpointModeResult {
  mode: CheckpointMode;
  stowage: StowageResult;
  peak_matches: boolean; // predicted arena peak === measured device_peak_bytes
  /** breakdown.activations + breakdown.gradients: the temporaries of the step live at the predicted peak. */
  activation_bytes: number;
  median_step_seconds: number;
  recompute_share: number; // recompute_flops / step_flops, from the plan
  step_time_overhead: number; // median step seconds / none's - 1
}

export interface CheckpointResults {
  date: string;
  config: { name: string; model: BenchConfig["model"]; batch: number };
  steps: StepCounts;
  threads: number;
  env: EnvSummary;
  load_average_before: number[];
  load_average_after: number[];
  modes: CheckpointModeResult[];
}

export function runCheckpointSection(
  c: BenchConfig,
  threads: number,
  tokenFile: string,
  workDir: string,
  env: NodeJS.ProcessEnv,
): CheckpointResults {
  const date = new Date().toISOString();
  const loadBefore = loadAverage();
  const runs = CHECKPOINT_MODES_BENCHED.map((mode) => {
    console.log(`${c.name} --checkpoint ${mode}: Stowage (compile, then ${c.warmupSteps} + ${c.measuredSteps} steps)...`);
    const stowage = runStowage(c, threads, tokenFile, workDir, env, mode);
    console.log(
      `  ${median(stowage.step_seconds).toFixed(2)} s/step, arena ${stowage.device_peak_bytes} bytes ` +
        `(predicted ${stowage.predicted_device_peak_bytes})`,
    );
    return { mode, stowage };
  });
  const baselineSeconds = median(runs[0].stowage.step_seconds); // none's, the first mode
  return {
    date,
    config: { name: c.name, model: c.model, batch: c.batch },
    steps: { warmupSteps: c.warmupSteps, measuredSteps: c.measuredSteps },
    threads,
    env: envSummary(env),
    load_average_before: loadBefore,
    load_average_after: loadAverage(),
    modes: runs.map(({ mode, stowage }) => {
      const seconds = median(stowage.step_seconds);
      const { breakdown: b, checkpoint: k } = stowage;
      return {
        mode,
        stowage,
        peak_matches: stowage.predicted_device_peak_bytes === stowage.device_peak_bytes,
        activation_bytes: b.activations + b.gradients,
        median_step_seconds: seconds,
        recompute_share: k.recompute_flops / k.step_flops,
        step_time_overhead: seconds / baselineSeconds - 1,
      };
    }),
  };
}
