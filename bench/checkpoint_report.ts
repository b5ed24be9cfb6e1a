// The "Activation checkpointing (124M)" section of bench/RESULTS.md: per mode, the arena peak predicted
// and measured, the activation memory at the peak, the step time and the recomputation it costs.
import type { CheckpointResults } from "./checkpoint.ts";
import { envLine, int, pct, signedPct, table } from "./markdown.ts";
import { mib } from "./results.ts";

const steps = (n: number) => `${n} step${n === 1 ? "" : "s"}`;

export function checkpointMarkdown(r: CheckpointResults): string {
  const none = r.modes[0];
  const m = r.config.model;
  const rows = r.modes.map((x) => {
    const s = x.stowage;
    const baseline = x === none;
    return [
      x.mode,
      int(s.predicted_device_peak_bytes),
      int(s.device_peak_bytes),
      x.peak_matches ? "yes" : "**NO**",
      baseline ? "-" : signedPct(s.predicted_device_peak_bytes / none.stowage.predicted_device_peak_bytes - 1),
      mib(s.breakdown.activations),
      mib(s.breakdown.gradients),
      mib(x.activation_bytes),
      x.median_step_seconds.toFixed(2),
      int(s.median_tokens_per_s),
      (s.checkpoint.recompute_flops / 1e9).toFixed(1),
      pct(x.recompute_share),
      baseline ? "(baseline)" : signedPct(x.step_time_overhead),
    ];
  });
  const perStep = r.modes.map((x) => `${x.mode}: ${x.stowage.step_seconds.map((s) => s.toFixed(2)).join(", ")}`);
  return [
    `## Activation checkpointing (${r.config.name})`,
    "",
    `GPT-2 ${r.config.name} (vocab ${m.vocab}, ${m.layers} layers, dim ${m.dim}, ${m.heads} heads, batch ` +
      `${r.config.batch} x seq ${m.seq}), compiled with \`stow compile --checkpoint MODE\` and trained by the ` +
      `standalone \`train\` binary, one mode after the other, ${r.threads} threads: ${steps(r.steps.warmupSteps)} ` +
      `of warm-up, then the median of ${r.steps.measuredSteps}. Run ${r.date}; load average before: ` +
      `${r.load_average_before.join(", ")}; after: ${r.load_average_after.join(", ")}. Environment: ${envLine(r.env)}.`,
    "",
    table(
      [
        "mode",
        "arena peak predicted (bytes)",
        "arena peak measured (bytes)",
        "equal",
        "peak vs none",
        "activations at peak",
        "gradients at peak",
        "activations + gradients",
        "median step (s)",
        "tok/s",
        "recompute GFLOP",
        "recompute / step FLOPs",
        "step time vs none",
      ],
      rows,
    ),
    "",
    "- **arena peak predicted**: plan.json's `device_peak_bytes`; **measured**: the largest `device_peak_bytes` " +
      "of the train binary's metrics (the arena's high-water mark); **equal** compares the two.",
    "- **activations at peak**, **gradients at peak**: plan.json's `breakdown.activations` and " +
      "`breakdown.gradients`: the temporaries live at the node where the plan's live bytes peak, split into " +
      "gradients (of parameters and of activations) and every other value the step computes (forward " +
      "activations, recomputed values, backward intermediates); **activations + gradients** is their sum. " +
      "Parameters, AdamW states, inputs, workspace and fragmentation make up the rest of the peak.",
    "- **recompute GFLOP**: plan.json's `checkpoint.recompute_flops`; **recompute / step FLOPs**: its share of " +
      "`checkpoint.step_flops`, the whole step's FLOPs with the recomputation included.",
    "- **median step**: the median of the metrics' `step_seconds` over the measured steps; **tok/s**: the median " +
      "of `tokens_per_s`; **step time vs none**: the median step time over none's, from this run, minus one.",
    `- Step seconds per measured step: ${perStep.join("; ")}.`,
    "",
  ].join("\n");
}
