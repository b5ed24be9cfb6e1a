// The "Offloaded model data" section of bench/RESULTS.md: per device budget, the step time against the
// all-resident compute and the transfer time, and whether 30% meets the target; first with the host's
// work on a core of its own (judged), then with every core shared (for comparison).
import { envLine, int, table } from "./markdown.ts";
import { OFFLOAD_TARGET_RATIO, type OffloadResults, type OffloadSection } from "./offload.ts";
import { mib } from "./results.ts";
import { CAPACITY, type CapacityResults } from "./capacity.ts";

export function offloadMarkdown(s: OffloadSection): string {
  const r = s.separate;
  const m = r.config.model;
  const at30 = (x: OffloadResults) => x.budgets.find((b) => b.share === 0.3);
  const verdict = at30(r)
    ? `At 30%: ${at30(r)!.ratio.toFixed(2)} (target <= ${OFFLOAD_TARGET_RATIO}): ${at30(r)!.ratio <= OFFLOAD_TARGET_RATIO ? "met" : "**not met**"}.`
    : "";
  return [
    `## Offloaded model data (${r.config.name})`,
    "",
    `A GPT of ${int(r.param_count)} parameters (vocab ${m.vocab}, ${m.layers} layers, dim ${m.dim}, ${m.heads} heads, ` +
      `batch ${r.config.batch} x seq ${m.seq}, --checkpoint ${r.config.checkpoint} in every run so each computes the same, ` +
      `--grad-clip ${r.config.grad_clip} so AdamW on the host overlaps the backward), compiled with ` +
      `\`--device-memory\` at each share of its all-resident arena and trained by the standalone binary. ` +
      `The emulated link moves all model data once (16 bytes a parameter) in a first all-resident run's time. ` +
      `Each budget ran ${r.rounds} times, in rounds over all budgets, and its steps are pooled.`,
    "",
    `On a GPU the device computes on its own silicon while the host's cores run AdamW for offloaded chunks and drive ` +
      `the copies. The CPU backend plays both on this machine's ${s.shared.threads} cores, so the judged run gives the ` +
      `device's compute ${r.threads} thread(s) and leaves the rest to the transfer engine's threads (the link's two ` +
      `directions and host AdamW); its compute-only time is measured with the same ${r.threads} thread(s). The second ` +
      `table gives compute all ${s.shared.threads} threads, shared with the transfer engine: there, what the host's ` +
      `work takes from the cores shows up as lost compute speed, which a GPU would not pay.`,
    "",
    `### Host work on a core of its own (${r.threads} compute thread(s))`,
    "",
    budgetsMarkdown(r),
    "",
    verdict,
    "",
    `### Every core shared (${s.shared.threads} compute threads)`,
    "",
    budgetsMarkdown(s.shared),
    "",
    at30(s.shared) ? `At 30% with shared cores: ${at30(s.shared)!.ratio.toFixed(2)} (not judged).` : "",
    "",
    "- **moved per step**: h2d and d2h bytes of a measured step (metrics); **transfer time**: the larger of the two over the link's rate, which is each direction's (PCIe is full duplex, and the emulated link has a thread each way, as the CUDA backend has a copy stream each way).",
    "- **compute waited**: the median of the metrics' `transfer_wait_seconds`, time the step spent in `wait` and at the final drain.",
    "- **predicted step**: plan.json's `predicted_step.seconds`, the cost model with its default machine numbers.",
    "",
  ].join("\n");
}

function budgetsMarkdown(r: OffloadResults): string {
  const rows = r.budgets.map((b) => [
    `${Math.round(b.share * 100)}%`,
    b.budget_bytes === null ? "none" : mib(b.budget_bytes),
    mib(b.arena_bytes),
    mib(b.device_peak_bytes),
    b.device_peak_bytes === b.predicted_device_peak_bytes ? "yes" : "**NO**",
    b.median_step_seconds.toFixed(3),
    b.predicted_step_seconds.toFixed(3),
    `${mib(b.h2d_bytes)} / ${mib(b.d2h_bytes)}`,
    b.transfer_seconds.toFixed(3),
    b.median_wait_seconds.toFixed(3),
    b.ratio.toFixed(2),
  ]);
  return [
    `Link \`--link-gbps ${r.link_gbps.toFixed(3)}\` (each way); compute-only time (the all-resident runs') ` +
      `${r.compute_only_seconds.toFixed(3)} s. Run ${r.date}; load average before: ${r.load_average_before.join(", ")}; ` +
      `after: ${r.load_average_after.join(", ")}. Environment: ${envLine(r.env)}.`,
    "",
    table(
      [
        "budget",
        "bytes",
        "plan's arena",
        "measured peak",
        "= predicted",
        "median step (s)",
        "predicted step (s)",
        "moved per step (in / out)",
        "transfer time (s)",
        "compute waited (s)",
        "step / max(compute, transfer)",
      ],
      rows,
    ),
  ].join("\n");
}

export function capacityMarkdown(r: CapacityResults): string {
  const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;
  const met = r.param_count >= r.target_params;
  const s = r.shape;
  return [
    "## Capacity: 2 GiB of device, 20 GiB of host",
    "",
    `The largest GPT of width ${s.dim} (vocab ${s.vocab}, ${s.heads} heads, context ${s.seq}) whose plan fits ` +
      `\`--device-memory ${CAPACITY.deviceMemory} --host-memory ${CAPACITY.hostMemory} --checkpoint auto\` at batch ` +
      `${CAPACITY.batch} x seq ${CAPACITY.seq}, found by \`stow capacity samples/gpt2.ts --preset 1.5B --target cpu\` (layers grown at the 1.5B width), then trained for ` +
      `${CAPACITY.steps} steps by the standalone binary (${r.threads} threads). Run ${r.date}; load average before: ` +
      `${r.load_average_before.join(", ")}. Environment: ${envLine(r.env)}.`,
    "",
    table(
      [
        "layers",
        "parameters",
        "target (90% of 20 GiB / 16 B)",
        "met",
        "host region (plan)",
        "host peak (measured)",
        "arena (plan)",
        "device peak (measured)",
        "checkpoint",
        "chunks",
        "moved per step",
        "predicted step (s)",
        "step times (s)",
        "losses",
      ],
      [
        [
          String(r.layers),
          int(r.param_count),
          int(r.target_params),
          met ? "yes" : "**no**",
          gib(r.host_bytes_planned),
          gib(r.host_peak_bytes),
          gib(r.arena_bytes),
          gib(r.device_peak_bytes),
          r.checkpoint,
          String(r.chunks),
          gib(r.transfer_bytes_per_step),
          r.predicted_step_seconds.toFixed(1),
          r.step_seconds.map((x) => x.toFixed(1)).join(", "),
          r.losses.map((x) => x.toFixed(3)).join(", "),
        ],
      ],
    ),
    "",
    `Peak RSS of the process (GNU time): ${gib(r.peak_rss_bytes)}.`,
    "",
  ].join("\n");
}
