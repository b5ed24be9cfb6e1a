// The "Elementwise fusion" section of bench/RESULTS.md: Llama fused and unfused, the plan's kernel and
// byte counts beside the measured step times, and whether the losses are the same bits.
import type { FusionResults } from "./fusion.ts";
import { envLine, int, signedPct, table } from "./markdown.ts";
import { mib } from "./results.ts";

export function fusionMarkdown(r: FusionResults): string {
  const m = r.config.model;
  const rows = r.runs.map((x) => [
    x.fusion,
    String(x.planned.groups),
    int(x.planned.kernels_per_step),
    mib(x.planned.elementwise_bytes),
    x.median_step_seconds.toFixed(3),
    int(x.stowage.median_tokens_per_s),
    x.stowage.predicted_step_seconds.toFixed(3),
    int(x.stowage.device_peak_bytes),
    x.stowage.predicted_device_peak_bytes === x.stowage.device_peak_bytes ? "yes" : "**NO**",
  ]);
  const perStep = r.runs.map((x) => `${x.fusion}: ${x.stowage.step_seconds.map((s) => s.toFixed(3)).join(", ")}`);
  return [
    `## Elementwise fusion (${r.config.name})`,
    "",
    `\`${r.config.modelFile}\` (vocab ${m.vocab}, ${m.layers} layers, dim ${m.dim}, ${m.heads} heads, batch ` +
      `${r.config.batch} x seq ${m.seq}), compiled with \`stow compile --fusion on\` and \`--fusion off\` and trained ` +
      `by the standalone \`train\` binary, one after the other, ${r.threads} threads: ${r.steps.warmupSteps} steps of ` +
      `warm-up, then the median of ${r.steps.measuredSteps}. Run ${r.date}; load average before: ` +
      `${r.load_average_before.join(", ")}; after: ${r.load_average_after.join(", ")}. Environment: ${envLine(r.env)}.`,
    "",
    table(
      [
        "fusion",
        "fused groups",
        "kernels per step",
        "elementwise traffic",
        "median step (s)",
        "tok/s",
        "predicted step (s)",
        "arena peak measured (bytes)",
        "= predicted",
      ],
      rows,
    ),
    "",
    `- **step time fused vs unfused**: ${signedPct(r.step_time_change)}; **losses of every step bitwise equal**: ` +
      `${r.losses_equal ? "yes" : "**NO**"}.`,
    "- **kernels per step**, **elementwise traffic**: plan.json's `fusion` (the nodes that launch a kernel; the " +
      "bytes elementwise and fused nodes read and write, each distinct input and each output once).",
    `- Step seconds per measured step: ${perStep.join("; ")}.`,
    "",
  ].join("\n");
}
