// The disk-tier section of bench/RESULTS.md (bench/disk_tier.ts): the plan against the measured steps, and
// the targets (budgets kept, loss falls, step within 1.25 x max(compute, disk / bandwidth)).
import type { DiskIoRates, DiskIoResults } from "./disk_io.ts";
import { type DiskTierResults, DISK_TIER } from "./disk_tier.ts";
import { int, table } from "./markdown.ts";

const GiB = 2 ** 30;
const gib = (bytes: number) => `${(bytes / GiB).toFixed(2)} GiB`;

/** The bound on a step: compute, or moving the step's disk bytes at the measured rates, whichever is longer, plus 25%. */
export function diskStepBound(r: DiskTierResults): number {
  const disk = r.disk_read_bytes_planned / r.disk_read_bandwidth + r.disk_write_bytes_planned / r.disk_write_bandwidth;
  return 1.25 * Math.max(r.predicted_compute_seconds, disk);
}

export function diskTierMarkdown(r: DiskTierResults): string {
  const bound = diskStepBound(r);
  const last = r.step_seconds.at(-1)!;
  const pass = (ok: boolean) => (ok ? "PASS" : "FAIL");
  const budget = DISK_TIER.deviceBytes + DISK_TIER.hostBytes;
  return [
    "## The disk tier",
    "",
    `GPT-2 ${DISK_TIER.preset}'s width with ${DISK_TIER.layers} layers (${int(r.param_count)} parameters, ${gib(r.model_data_bytes)} of model data at 16 bytes a ` +
      `parameter, ${(r.model_data_bytes / DISK_TIER.hostBytes).toFixed(1)}x the host cap), batch ${DISK_TIER.batch} x seq ` +
      `${DISK_TIER.seq}, --device-memory ${DISK_TIER.deviceMemory} --host-memory ${DISK_TIER.hostMemory}, the disk tier in ` +
      `the benchmark's work folder, ${r.threads} threads, ${DISK_TIER.steps} steps of the standalone binary. Disk rates as ` +
      `the cpu target's probe measured them there: read ${(r.disk_read_bandwidth / 1e9).toFixed(2)} GB/s, write ` +
      `${(r.disk_write_bandwidth / 1e9).toFixed(2)} GB/s. Run ${r.date}; load average before: ${r.load_average_before.join(", ")} ` +
      "(the machine is shared with other processes). The step bound takes the plan's compute and the disk bytes at those " +
      "rates, read and write one after the other. Host AdamW reads ahead and writes behind its update through the disk " +
      "pipeline, but it needs the gradient norm, so it runs after the backward, with no compute left to hide its disk " +
      "time: the step is about the compute plus the disk time of host AdamW, which the waits for transfers show. The " +
      `plan plays the step out so (${r.predicted_step_seconds.toFixed(1)} s): that is the floor of a step whose optimizer ` +
      `follows the gradient norm and precedes the next forward, ${r.predicted_step_seconds > bound ? "above" : "within"} the ` +
      "bound; meeting it needs host AdamW to overlap the next step's forward.",
    "",
    table(
      ["", "planned", "measured"],
      [
        ["host region", gib(r.host_bytes_planned), `host pool peak ${gib(r.host_peak_bytes)}`],
        ["device arena", gib(r.arena_bytes), `peak ${gib(r.device_peak_bytes)}`],
        [
          "disk tier",
          `${gib(r.disk_bytes)}: moments of ${r.moments_on_disk / 2} parameters, ${r.grads_on_disk} gradients, ${r.params_on_disk} parameters`,
          "",
        ],
        ["staging buffers", gib(r.staging_bytes), ""],
        ["disk read a step", gib(r.disk_read_bytes_planned), r.disk_read_bytes.map(gib).join(", ")],
        ["disk written a step", gib(r.disk_write_bytes_planned), r.disk_write_bytes.map(gib).join(", ")],
        [
          "step",
          `${r.predicted_step_seconds.toFixed(1)} s (compute ${r.predicted_compute_seconds.toFixed(1)} s)`,
          r.step_seconds.map((s) => `${s.toFixed(1)} s`).join(", "),
        ],
        ...(r.transfer_wait_seconds
          ? [["compute waited for transfers and disk", "", r.transfer_wait_seconds.map((s) => `${s.toFixed(1)} s`).join(", ")]]
          : []),
        ["loss", "", r.losses.map((l) => l.toFixed(4)).join(", ")],
        ["process peak RSS", "", gib(r.peak_rss_bytes)],
      ],
    ),
    "",
    table(
      ["target", "measured", "result"],
      [
        [
          "model data >= 3x the host cap",
          `${(r.model_data_bytes / DISK_TIER.hostBytes).toFixed(2)}x`,
          pass(r.model_data_bytes >= 3 * DISK_TIER.hostBytes),
        ],
        ["loss falls", `${r.losses[0].toFixed(4)} -> ${r.losses.at(-1)!.toFixed(4)}`, pass(r.losses.at(-1)! < r.losses[0])],
        ["device peak <= device budget", gib(r.device_peak_bytes), pass(r.device_peak_bytes <= DISK_TIER.deviceBytes)],
        ["peak RSS <= device + host budgets", gib(r.peak_rss_bytes), pass(r.peak_rss_bytes <= budget)],
        [
          "disk bytes as planned",
          `${r.disk_read_bytes.every((b) => b === r.disk_read_bytes_planned) && r.disk_write_bytes.every((b) => b === r.disk_write_bytes_planned) ? "equal" : "differ"}`,
          pass(
            r.disk_read_bytes.every((b) => b === r.disk_read_bytes_planned) &&
              r.disk_write_bytes.every((b) => b === r.disk_write_bytes_planned),
          ),
        ],
        [`last step <= 1.25 x max(compute, disk / bandwidth) = ${bound.toFixed(1)} s`, `${last.toFixed(1)} s`, pass(last <= bound)],
      ],
    ),
    "",
    ...(r.disk_io ? diskIoMarkdown(r.disk_io) : []),
  ].join("\n");
}

/** The tier's own I/O (a pool of threads) against io_uring at the same depth and request size. */
function diskIoMarkdown(d: DiskIoResults): string[] {
  const gbs = (bytesPerSecond: number) => `${(bytesPerSecond / 1e9).toFixed(2)} GB/s`;
  const row = (way: string, r: DiskIoRates) => [way, gbs(r.read_bytes_per_s), gbs(r.write_bytes_per_s), gbs(r.mixed_bytes_per_s)];
  return [
    `Disk I/O, the tier's way against io_uring, after training (bench/disk_io.cpp): ${d.bytes / 2 ** 20} MiB regions, O_DIRECT, ` +
      `${d.depth} requests of ${d.request_bytes / 2 ** 20} MiB in flight, the median of ${d.rounds} rounds; "both" reads one region ` +
      "while writing another, as the disk pipeline's reader and writer do, and counts both." +
      (d.io_uring ? "" : " io_uring was not measured: liburing-dev is not installed."),
    "",
    table(
      ["way", "read", "write", "both at once"],
      [
        row(`DiskTier, ${d.depth} threads each way (the runtime's)`, d.threads),
        ...(d.io_uring ? [row("io_uring, one thread each way", d.io_uring)] : []),
      ],
    ),
    "",
  ];
}
