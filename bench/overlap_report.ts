// The overlap section of bench/RESULTS.md (bench/overlap.ts): step time at dp 2, ZeRO 3, with the
// chunk collectives overlapping compute and blocking, beside what the plan predicts for each.
import type { OverlapResults } from "./overlap.ts";
import { int, signedPct, table } from "./markdown.ts";

export function overlapMarkdown(r: OverlapResults): string {
  const ms = (s: number) => (s * 1e3).toFixed(1);
  const rows = r.runs.map((run) => [
    run.overlap,
    ms(run.median_step_seconds),
    ms(run.median_collective_wait_seconds),
    run.step_seconds.map((round) => ms(Math.min(...round))).join(" / "),
    ms(run.predicted.seconds),
    ms(run.predicted.network_seconds),
    run.predicted.overlaps_collectives ? ms(run.predicted.network_hidden_seconds) : "0 (blocking)",
    int(run.device_peak_bytes),
    int(run.collective_bytes_per_step),
  ]);
  return [
    "## Overlap of ZeRO collectives with compute",
    "",
    `\`stow train ${r.config.model.join(" ")} --batch ${r.config.batch} --seq ${r.config.seq} --threads ${r.config.threads_per_rank} ` +
      `--dp ${r.config.dp} --zero ${r.config.zero} --overlap on|off\`: ${r.rounds} alternating rounds of ${r.steps} steps each, ` +
      `the first ${r.warmup_steps} of each run not measured; the median of every measured step. Both ranks share this ` +
      "machine's cores, so the MPI collectives are shared-memory copies that the same cores make: there is little " +
      "network time to hide, and what overlap can win is the ranks' waiting for each other. " +
      "'Waited for collectives' is the median over steps of the ranks' mean `rank_collective_wait_us`: the time a rank " +
      "blocked in `wait_collective` (all of each collective when they block; what compute did not hide when they overlap). " +
      `Run ${r.date}; load average before: ${r.load_average_before.join(", ")}; after: ${r.load_average_after.join(", ")} ` +
      "(the machine is shared with other processes).",
    "",
    table(
      [
        "overlap",
        "median step ms",
        "waited for collectives ms",
        "fastest step ms, per round",
        "predicted ms",
        "collectives ms (predicted)",
        "hidden ms (predicted)",
        "device peak B",
        "collective B/step",
      ],
      rows,
    ),
    "",
    `Overlapped against blocking: ${signedPct(r.step_time_change)} median step time. ` +
      `Losses bitwise equal: ${r.losses_equal ? "yes" : "NO"}.`,
    "",
  ].join("\n");
}
