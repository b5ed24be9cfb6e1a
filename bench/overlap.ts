// The overlap section (`npm run bench -- overlap`): one GPT trained at --dp 2 --zero 3 (each rank one
// thread, the two ranks on the machine's cores), with ZeRO's gathers and reduce-scatters overlapping
// compute (the default) and blocking (`--overlap off`), in alternating rounds so that a busy moment of
// the shared machine falls on both alike. Per mode: the median step time over every round's measured
// steps and the median time the ranks waited for the collectives (the part overlap did not hide), the
// plan's predicted step, collectives and hidden time, and its device peak; and whether the two modes'
// losses are the same bits.
import { readFileSync } from "node:fs";
import path from "node:path";
import { repoRoot } from "../base/paths.ts";
import { runChild } from "./child.ts";
import { loadAverage } from "./machine.ts";
import { median } from "./stats.ts";

const MODEL = ["samples/gpt2.ts", "--preset", "mini", "--set", "vocab=8192"];
const BATCH = 8;
const SEQ = 128;
const ROUNDS = 3;
const STEPS = 12;
const WARMUP = 2; // steps of each run not measured

type Mode = "on" | "off";

export interface OverlapRun {
  overlap: Mode;
  /** Measured step seconds of each round (after its warm-up steps). */
  step_seconds: number[][];
  median_step_seconds: number;
  /** Each measured step's wait for ZeRO's collectives (rank_collective_wait_us), the mean over the ranks. */
  collective_wait_seconds: number[];
  median_collective_wait_seconds: number;
  predicted: { seconds: number; network_seconds: number; network_hidden_seconds: number; overlaps_collectives: boolean };
  device_peak_bytes: number;
  collective_bytes_per_step: number;
  losses: number[];
}

export interface OverlapResults {
  date: string;
  config: { model: string[]; batch: number; seq: number; dp: number; zero: number; threads_per_rank: number };
  rounds: number;
  steps: number;
  warmup_steps: number;
  load_average_before: number[];
  load_average_after: number[];
  runs: OverlapRun[];
  losses_equal: boolean;
  /** Median step time overlapped over blocking, minus one. */
  step_time_change: number;
}

export function runOverlapSection(tokenFile: string, workDir: string, env: NodeJS.ProcessEnv): OverlapResults {
  const stow = path.join(repoRoot, "bin", "stow.js");
  const flags = (mode: Mode) => [
    ...MODEL,
    "--batch",
    String(BATCH),
    "--seq",
    String(SEQ),
    "--threads",
    "1",
    "--dp",
    "2",
    "--zero",
    "3",
    "--overlap",
    mode,
  ];
  const loadBefore = loadAverage();
  const measured = new Map<Mode, { seconds: number[][]; waits: number[]; losses: number[] }>([
    ["on", { seconds: [], waits: [], losses: [] }],
    ["off", { seconds: [], waits: [], losses: [] }],
  ]);
  for (let round = 0; round < ROUNDS; round++)
    for (const mode of ["on", "off"] as const) {
      console.log(`overlap ${mode}: round ${round + 1} of ${ROUNDS} (${STEPS} steps at dp 2)...`);
      const metrics = path.join(workDir, `overlap-${mode}.jsonl`);
      runChild(
        `overlap ${mode}`,
        "node",
        [stow, "train", ...flags(mode), "--data", tokenFile, "--steps", String(STEPS), "--no-sample", "--metrics", metrics],
        env,
      );
      const steps = readFileSync(metrics, "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { loss: number; step_seconds: number; rank_collective_wait_us: number[] });
      const m = measured.get(mode)!;
      m.seconds.push(steps.slice(WARMUP).map((s) => s.step_seconds));
      const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
      m.waits.push(...steps.slice(WARMUP).map((s) => mean(s.rank_collective_wait_us) / 1e6));
      m.losses = steps.map((s) => s.loss);
    }
  const runs = (["on", "off"] as const).map((mode): OverlapRun => {
    const plan = JSON.parse(runChild(`overlap ${mode}: plan`, "node", [stow, "plan", ...flags(mode), "--json"], env));
    const m = measured.get(mode)!;
    return {
      overlap: mode,
      step_seconds: m.seconds,
      median_step_seconds: median(m.seconds.flat()),
      collective_wait_seconds: m.waits,
      median_collective_wait_seconds: median(m.waits),
      predicted: plan.predicted_step,
      device_peak_bytes: plan.device_peak_bytes,
      collective_bytes_per_step: plan.data_parallel.collective_bytes_per_step,
      losses: m.losses,
    };
  });
  const [on, off] = runs;
  return {
    date: new Date().toISOString(),
    config: { model: MODEL, batch: BATCH, seq: SEQ, dp: 2, zero: 3, threads_per_rank: 1 },
    rounds: ROUNDS,
    steps: STEPS,
    warmup_steps: WARMUP,
    load_average_before: loadBefore,
    load_average_after: loadAverage(),
    runs,
    losses_equal: on.losses.length === off.losses.length && on.losses.every((l, i) => l === off.losses[i]),
    step_time_change: on.median_step_seconds / off.median_step_seconds - 1,
  };
}
