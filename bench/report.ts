// bench/RESULTS.md: the header (machine, BLAS, threads), the speed and memory tables, the targets, and
// the checkpoint section. Either part may be missing (not run yet).
import type { CheckpointResults } from "./checkpoint.ts";
import { checkpointMarkdown } from "./checkpoint_report.ts";
import type { OffloadSection } from "./offload.ts";
import { capacityMarkdown, offloadMarkdown } from "./offload_report.ts";
import type { CapacityResults } from "./capacity.ts";
import type { CapacityTargetsResults } from "./capacity_targets.ts";
import { capacityTargetsMarkdown } from "./capacity_targets_report.ts";
import type { PlanningResults } from "./planning.ts";
import { planningMarkdown } from "./planning_report.ts";
import type { FusionResults } from "./fusion.ts";
import { fusionMarkdown } from "./fusion_report.ts";
import type { HostAdamwResults } from "./host_adamw.ts";
import { hostAdamwMarkdown } from "./host_adamw_report.ts";
import type { DiskTierResults } from "./disk_tier.ts";
import { diskTierMarkdown } from "./disk_tier_report.ts";
import type { OverlapResults } from "./overlap.ts";
import { overlapMarkdown } from "./overlap_report.ts";
import { envLine, int, pct, table } from "./markdown.ts";
import { mib, type BenchResults, type ConfigResult } from "./results.ts";
import type { SgemmPeak } from "./sgemm.ts";

const gflops = (x: number) => x.toFixed(1);

function sgemm(s: SgemmPeak): string {
  return `${gflops(s.median_gflops)} (median of ${s.repeats} cblas_sgemm ${s.n}^3 calls, best ${gflops(s.best_gflops)})`;
}

/** Stock PyTorch's tok/s, with its step count where it ran fewer steps than the tuned run. */
function stockTokensPerS(r: ConfigResult): string {
  const measured = r.pytorch_stock.tokens_per_s.length;
  const steps = measured === r.pytorch.tokens_per_s.length ? "" : ` (median of ${measured} steps)`;
  return `${int(r.pytorch_stock.median_tokens_per_s)}${steps}`;
}

function shape(r: ConfigResult): string {
  const m = r.config.model;
  return `vocab ${m.vocab}, ${m.layers} layers, dim ${m.dim}, ${m.heads} heads, batch ${r.config.batch} x seq ${m.seq}`;
}

export function resultsMarkdown(
  speed: BenchResults | null,
  checkpoint: CheckpointResults | null,
  offload: OffloadSection | null,
  capacity: CapacityResults | null,
  capacityTargets: CapacityTargetsResults | null = null,
  planning: PlanningResults | null = null,
  fusion: FusionResults | null = null,
  hostAdamw: HostAdamwResults | null = null,
  diskTier: DiskTierResults | null = null,
  overlap: OverlapResults | null = null,
): string {
  return [
    "# Benchmark: one GPT-2 training step, Stowage vs PyTorch (CPU)",
    "",
    "Written by `npm run bench` (see bench/README.md for what each column means); raw numbers in results.json.",
    "",
    speed ? speedMarkdown(speed) : "(No speed results: `npm run bench` or `npm run bench -- small 124M` writes them.)\n",
    checkpoint ? checkpointMarkdown(checkpoint) : "(No checkpoint results: `npm run bench -- checkpoint` writes them.)\n",
    offload ? offloadMarkdown(offload) : "(No offload results: `npm run bench -- offload` writes them.)\n",
    capacity ? capacityMarkdown(capacity) : "(No capacity results: `npm run bench -- capacity` writes them.)\n",
    capacityTargets
      ? capacityTargetsMarkdown(capacityTargets)
      : "(No capacity-targets results: `npm run bench -- capacity-targets` writes them.)\n",
    planning ? planningMarkdown(planning) : "(No planning results: `npm run bench -- planning` writes them.)\n",
    fusion ? fusionMarkdown(fusion) : "(No fusion results: `npm run bench -- fusion` writes them.)\n",
    hostAdamw ? hostAdamwMarkdown(hostAdamw) : "(No host AdamW results: `npm run bench -- host-adamw` writes them.)\n",
    diskTier ? diskTierMarkdown(diskTier) : "(No disk-tier results: `npm run bench -- disk-tier` writes them.)\n",
    overlap ? overlapMarkdown(overlap) : "(No overlap results: `npm run bench -- overlap` writes them.)\n",
  ].join("\n");
}

function speedMarkdown(b: BenchResults): string {
  const speed = table(
    [
      "config",
      "params",
      "FLOPs/token",
      "Stowage tok/s",
      "PyTorch tok/s",
      "Stowage / PyTorch",
      "Stowage GFLOP/s",
      "PyTorch GFLOP/s",
      "Stowage MFU",
      "PyTorch MFU",
      "stock PyTorch tok/s",
      "stock PyTorch MFU",
      "stock PyTorch OpenBLAS core",
      "Stowage / stock PyTorch",
    ],
    b.configs.map((r) => [
      r.config.name,
      int(r.param_count),
      `${(r.flops_per_token / 1e6).toFixed(1)} M`,
      int(r.stowage.median_tokens_per_s),
      int(r.pytorch.median_tokens_per_s),
      `${r.speed_ratio.toFixed(2)}x`,
      gflops(r.stowage.achieved_gflops),
      gflops(r.pytorch.achieved_gflops),
      pct(r.stowage.mfu),
      pct(r.pytorch.mfu),
      stockTokensPerS(r),
      pct(r.pytorch_stock.mfu),
      r.pytorch_stock.openblas_core ?? "(not OpenBLAS)",
      `${r.stock_speed_ratio.toFixed(2)}x`,
    ]),
  );
  const memory = table(
    [
      "config",
      "Stowage arena (measured)",
      "Stowage host",
      "Stowage arena + host",
      "Stowage RSS",
      "PyTorch RSS (ru_maxrss)",
      "PyTorch RSS (GNU time)",
    ],
    b.configs.map((r) => [
      r.config.name,
      mib(r.stowage.device_peak_bytes),
      mib(r.stowage.host_peak_bytes),
      mib(r.stowage.peak_bytes),
      mib(r.stowage.peak_rss_bytes),
      mib(r.pytorch.peak_rss_bytes),
      mib(r.pytorch.time_peak_rss_bytes),
    ]),
  );
  const steps = b.configs.map(
    (r) =>
      `- **${r.config.name}**: ${shape(r)}; ${r.config.warmupSteps} warm-up steps, then the median of ` +
      `${r.config.measuredSteps}. Stowage tok/s per step: ${r.stowage.tokens_per_s.map(int).join(", ")}; ` +
      `PyTorch: ${r.pytorch.tokens_per_s.map(int).join(", ")}; stock PyTorch (after ${r.pytorch_stock.warmup_steps} ` +
      `warm-up, ${r.pytorch_stock.tokens_per_s.length} measured): ${r.pytorch_stock.tokens_per_s.map(int).join(", ")}.`,
  );
  const targets = table(
    ["config", "target", "measured", "result"],
    b.targets.map((t) => [t.config, t.target, t.measured, t.pass === null ? "-" : t.pass ? "PASS" : "FAIL"]),
  );
  const torch = b.torch
    ? [
        "## PyTorch build",
        "",
        "```",
        `torch ${b.torch.version}, OpenBLAS core ${b.torch.openblas_core ?? "(not OpenBLAS)"}`,
        b.torch.parallel_info.trimEnd(),
        b.torch.config.trimEnd(),
        "```",
        "",
      ]
    : [];
  return [
    `- date: ${b.date}`,
    `- machine: ${b.machine.cpu}, ${b.machine.cores} cores`,
    `- load average (1, 5, 15 min) before: ${b.machine.load_average_before.join(", ")}; ` +
      `after: ${b.machine.load_average_after.join(", ")} (other processes on the machine skew the numbers)`,
    `- threads: ${b.threads} for all runs (and torch.set_num_threads(${b.threads}))`,
    `- tuned environment (sgemm peak, Stowage, PyTorch with the same OpenBLAS kernels): ${envLine(b.env)}`,
    `- stock environment (PyTorch as installed, the peer the issue's targets name): ${envLine(b.stock_env)}`,
    `- OpenBLAS core: ${b.sgemm.before.core} (sgemm), ${b.torch?.openblas_core ?? "-"} (PyTorch)`,
    `- sgemm peak: **${gflops(b.sgemm.peak_gflops)} GFLOP/s**, the higher of ${sgemm(b.sgemm.before)} before ` +
      `and ${sgemm(b.sgemm.after)} after the training runs`,
    "",
    "## Speed",
    "",
    speed,
    "",
    ...steps,
    "",
    "## Peak memory",
    "",
    memory,
    "",
    "## Targets",
    "",
    targets,
    "",
    ...torch,
  ].join("\n");
}
