// The "Capacity on target hardware" section of bench/RESULTS.md: the largest GPT of samples/gpt2.ts's
// family on the RTX 3090 and RTX 2060 profiles beside the published claims, with the assumptions, and
// the cpu prediction against measured steps.
import { CPU_ERROR_TARGET, type CapacityTargetsResults } from "./capacity_targets.ts";
import { envLine, int, signedPct, table } from "./markdown.ts";

interface CapacityJson {
  family: { rule: string };
  target: {
    description: string;
    device_memory_bytes: number;
    machine: { matmulFlops: number; memoryBandwidth: number; linkBandwidth: number; hostBandwidth: number };
  };
  largest: { label: string; param_count: number };
  next: { label: string; reason: string | null } | null;
  plan: {
    device_peak_bytes: number;
    host_bytes: number;
    checkpoint: string;
    chunks: number;
    resident_chunks: number;
    h2d_bytes_per_step: number;
    d2h_bytes_per_step: number;
  };
  predicted: { step_seconds: number; compute_seconds: number; tokens_per_s: number };
  search: { plans: number; seconds: number };
}

const gib = (b: number) => `${(b / 2 ** 30).toFixed(1)} GiB`;
const tera = (x: number) => `${(x / 1e12).toFixed(1)} T`;
const giga = (x: number) => `${(x / 1e9).toFixed(0)} G`;

export function capacityTargetsMarkdown(r: CapacityTargetsResults): string {
  const gpu = r.gpu.map((g) => ({ ...g, c: g.capacity as unknown as CapacityJson }));
  const gpuRows = gpu.map(({ target, host_memory, claim, c }) => [
    target,
    host_memory,
    `${c.largest.label}: **${(c.largest.param_count / 1e9).toFixed(2)} B**`,
    c.next ? `${c.next.label}: ${c.next.reason ?? ""}` : "-",
    gib(c.plan.device_peak_bytes),
    gib(c.plan.host_bytes),
    c.plan.checkpoint,
    `${c.plan.chunks} (${c.plan.resident_chunks} on device)`,
    `${gib(c.plan.h2d_bytes_per_step)} / ${gib(c.plan.d2h_bytes_per_step)}`,
    c.predicted.step_seconds.toFixed(1),
    c.predicted.tokens_per_s.toFixed(0),
    claim,
  ]);
  const profiles = gpu.map(({ target, c }) => {
    const m = c.target.machine;
    return (
      `- **${target}**: ${c.target.description}; plan budget ${gib(c.target.device_memory_bytes)}; matmul ${tera(m.matmulFlops)}FLOP/s, ` +
      `device memory ${giga(m.memoryBandwidth)}B/s, link ${giga(m.linkBandwidth)}B/s, host AdamW ${giga(m.hostBandwidth)}B/s ` +
      `(src/targets/gpus.ts states the sources). Search: ${c.search.plans} plans in ${c.search.seconds.toFixed(0)} s.`
    );
  });
  const cpuRows = r.cpu.map((p) => {
    const m = p.config.model;
    return [
      p.config.name,
      `vocab ${m.vocab}, ${m.layers} layers, dim ${m.dim}, ${m.heads} heads, batch ${p.config.batch} x seq ${m.seq}`,
      int(p.param_count),
      p.sgemm_flops_before_after.map((f) => (f / 1e9).toFixed(0)).join(" / "),
      (Number(p.machine.memory_bandwidth) / 1e9).toFixed(1),
      p.predicted_step_seconds.toFixed(3),
      p.median_step_seconds.toFixed(3),
      signedPct(p.error),
      Math.abs(p.error) <= CPU_ERROR_TARGET ? "yes" : "**no**",
      p.load_average_before.join(", "),
    ];
  });
  const within = r.cpu.filter((p) => Math.abs(p.error) <= CPU_ERROR_TARGET).length;
  return [
    "## Capacity on target hardware",
    "",
    `\`stow capacity samples/gpt2.ts --target T --host-memory H --batch ${r.gpu_step.batch} --seq ${r.gpu_step.seq}\`: the largest ` +
      `member of the sample's family (${gpu[0]?.c.family.rule ?? "-"}) whose training step the planner fits in the profile's ` +
      `device memory and H of host memory (--checkpoint auto), and the step time the planner's cost model predicts on the profile. ` +
      `Run ${r.date}; ${r.threads} threads for the planner; load average before: ${r.load_average_before.join(", ")}; after: ` +
      `${r.load_average_after.join(", ")}.`,
    "",
    table(
      [
        "target",
        "host memory",
        "largest GPT",
        "the next one",
        "device peak",
        "model data on host",
        "checkpoint",
        "chunks",
        "moved per step (in / out)",
        "predicted step (s)",
        "tokens/s",
        "published claim",
      ],
      gpuRows,
    ),
    "",
    ...profiles,
    "",
    "Assumptions, and how the comparison is skewed:",
    "",
    "- **fp32 training**: 16 bytes of model data a parameter (parameters, gradients, AdamW m and v), fp32 activations and copies. " +
      "The published runs are mixed precision (fp16 parameters, gradients and activations on the device, fp32 master weights and " +
      "moments on the host): about the same 16 bytes a parameter in all, so host memory bounds both alike, but they move half the " +
      "bytes over PCIe, keep half the activations, and run products on fp16 tensor cores (several times the fp32 rate). Their step " +
      "times would be shorter than these predictions; their capacity is similar at the same host memory.",
    "- **Host memory** is our assumption (256 GiB and 64 GiB). 18B parameters at 16 bytes is 268 GiB of model data, so the " +
      "3090 claim needs about that much host (plus device) memory in any system that keeps fp32 AdamW states; the published " +
      "descriptions we found do not state the host memory, batch or sequence length of those runs.",
    `- **The step**: batch ${r.gpu_step.batch} x seq ${r.gpu_step.seq}, activation checkpointing chosen by the planner; ` +
      "a larger batch needs more device memory for activations (at batch 8 the 2060 profile fits fewer layers, device-bound).",
    "- **The family** grows GPT-3 6.7B's width (4096) in depth: about 201M parameters a layer; a different width moves the " +
      "answer by up to one layer's worth.",
    "- **Time**: the cost model plays out compute (on these profiles: products at the matmul rate, other kernels at the memory " +
      "bandwidth), copies on one link, and host AdamW; it ignores kernel launch costs, and its rates are estimates, not measurements " +
      "on these cards (only `cpu` measures rates by product size and kernel).",
    "",
    "### Predicted against measured on `cpu`",
    "",
    `Three small GPTs, each trained by the standalone binary between two fresh probes of this machine (src/targets/cpu_probe.cpp: ` +
      `sgemm at 1024 x n x n for n from 64 to 2048; the runtime's own attention kernels, forward and backward, on a grid of ` +
      `T (64 to 1024) and D (32 to 128); the fused LM head's softmax pass over one tile; the runtime's GELU, LayerNorm and ` +
      `transpose kernels and an AdamW loop; an OpenMP triad moving 3 to 192 MiB a pass; one thread's memcpy). The cost model ` +
      `takes each matmul at the sgemm rate interpolated at its size, attention at its measured rate for its T and D, the fused ` +
      `head as its tiles' sgemms plus the softmax pass, the measured elementwise kernels at their rates and other kernels' ` +
      `bytes at the triad bandwidth interpolated at their size; nothing in it is fitted to these configs. The prediction is \`stow plan --target\` with the mean of the two ` +
      `probes as a JSON profile, the same cost model the planner uses. The error is the prediction over the median measured ` +
      `step, minus one. ${within} of ${r.cpu.length} within ${CPU_ERROR_TARGET * 100}%. Environment: ${envLine(r.env)}.`,
    "",
    table(
      [
        "config",
        "shape",
        "params",
        "sgemm GFLOP/s at 1024 x 2048 x 2048 (probe before / after)",
        "triad GB/s at 192 MiB (mean)",
        "predicted step (s)",
        "measured median (s)",
        "error",
        `within ${CPU_ERROR_TARGET * 100}%`,
        "load average before",
      ],
      cpuRows,
    ),
    "",
    ...r.cpu.map(
      (p) => `- ${p.config.name}: ${p.config.warmupSteps} warm-up steps, then ${p.step_seconds.map((s) => s.toFixed(3)).join(", ")} s.`,
    ),
    "",
    "The machine is shared by several engineers (load averages above); a probe and the steps after it see whatever else runs.",
    "",
  ].join("\n");
}
