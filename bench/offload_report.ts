// The "Offloaded model data" section of bench/RESULTS.md: per device budget, the step time against the
// all-resident compute and the transfer time, and whether 30% meets the target.
import { envLine, int, table } from "./markdown.ts";
import { OFFLOAD_TARGET_RATIO, type OffloadResults } from "./offload.ts";
import { mib } from "./results.ts";

export function offloadMarkdown(r: OffloadResults): string {
  const m = r.config.model;
  const rows = r.budgets.map((b) => [
    `${Math.round(b.share * 100)}%`, b.budget_bytes === null ? "none" : mib(b.budget_bytes), mib(b.arena_bytes),
    mib(b.device_peak_bytes), b.device_peak_bytes === b.predicted_device_peak_bytes ? "yes" : "**NO**",
    b.median_step_seconds.toFixed(3), b.predicted_step_seconds.toFixed(3), mib(b.transfer_bytes),
    b.transfer_seconds.toFixed(3), b.median_wait_seconds.toFixed(3), b.ratio.toFixed(2),
  ]);
  const at30 = r.budgets.find((b) => b.share === 0.3);
  const verdict = at30
    ? `At 30%: ${at30.ratio.toFixed(2)} (target <= ${OFFLOAD_TARGET_RATIO}): ${at30.ratio <= OFFLOAD_TARGET_RATIO ? "met" : "**not met**"}.`
    : "";
  return [
    `## Offloaded model data (${r.config.name})`,
    "",
    `A GPT of ${int(r.param_count)} parameters (vocab ${m.vocab}, ${m.layers} layers, dim ${m.dim}, ${m.heads} heads, ` +
      `batch ${r.config.batch} x seq ${m.seq}, --checkpoint ${r.config.checkpoint} in every run so each computes the same, ` +
      `--grad-clip ${r.config.grad_clip} so AdamW on the host overlaps the backward), compiled with ` +
      `\`--device-memory\` at each share of its all-resident arena and trained by the standalone binary, ${r.threads} threads. ` +
      `The emulated link (\`--link-gbps ${r.link_gbps.toFixed(3)}\`) moves all model data once (16 bytes a parameter) in ` +
      `the all-resident step's time, ${r.compute_only_seconds.toFixed(3)} s. Run ${r.date}; load average before: ` +
      `${r.load_average_before.join(", ")}; after: ${r.load_average_after.join(", ")}. Environment: ${envLine(r.env)}.`,
    "",
    table(
      ["budget", "bytes", "plan's arena", "measured peak", "= predicted", "median step (s)", "predicted step (s)",
        "moved per step", "transfer time (s)", "compute waited (s)", "step / max(compute, transfer)"],
      rows,
    ),
    "",
    verdict,
    "",
    "- **moved per step**: h2d + d2h bytes of a measured step (metrics); **transfer time**: those bytes over the link.",
    "- **compute waited**: the median of the metrics' `transfer_wait_seconds`, time the step spent in `wait` and at the final drain.",
    "- **predicted step**: plan.json's `predicted_step.seconds`, the cost model with its default machine numbers.",
    "",
  ].join("\n");
}
