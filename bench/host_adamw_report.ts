// The host AdamW section of bench/RESULTS.md (bench/host_adamw.ts): parameters/s and GB/s of each pool
// size, against the triad measured in the same rounds.
import { ADAMW_BYTES_PER_PARAM, type HostAdamwResults } from "./host_adamw.ts";
import { int, pct, table } from "./markdown.ts";

const TARGET_SHARE = 0.7;

export function hostAdamwMarkdown(r: HostAdamwResults): string {
  const triad = r.triad_bytes_per_s;
  const rows = r.adamw.map((a) => {
    const params = r.elements / a.seconds;
    const bytes = params * ADAMW_BYTES_PER_PARAM;
    return [String(a.threads), (a.seconds * 1e3).toFixed(1), int(params / 1e6), (bytes / 1e9).toFixed(1), pct(bytes / triad)];
  });
  const most = r.adamw.reduce((a, b) => (b.threads > a.threads ? b : a));
  const share = (r.elements * ADAMW_BYTES_PER_PARAM) / most.seconds / triad;
  return [
    "## Host AdamW (offloaded chunks)",
    "",
    `The runtime's AdamW of a chunk in host memory (\`host_adamw\`: one fused, vectorized pass over p, g, m, v, split over ` +
      `the host pool's threads) on ${int(r.elements)} parameters (${int((r.elements * 16) / 2 ** 20)} MiB of p, g, m, v), ` +
      `against an OpenMP triad a = b + s*c on ${r.triad_threads} threads over the same memory, in ${r.rounds} rounds of ` +
      `(triad, AdamW on each pool); the median of each. An AdamW parameter counts ${ADAMW_BYTES_PER_PARAM} bytes (p, g, m, v ` +
      "read; p, m, v written), a triad element 12 (as STREAM counts them). AdamW writes only what it has read, so it causes " +
      "no extra write-allocate reads, while the triad's store to `a` does: counted bytes can exceed the triad's. " +
      `Run ${r.date}; load average before: ${r.load_average_before.join(", ")}; after: ${r.load_average_after.join(", ")} ` +
      "(the machine is shared with other processes).",
    "",
    `Triad: **${(triad / 1e9).toFixed(1)} GB/s**.`,
    "",
    table(["pool threads", "ms a pass", "M parameters/s", "GB/s", "of triad"], rows),
    "",
    table(
      ["target", "measured", "result"],
      [[`host AdamW on ${most.threads} threads >= ${pct(TARGET_SHARE)} of the triad`, pct(share), share >= TARGET_SHARE ? "PASS" : "FAIL"]],
    ),
    "",
  ].join("\n");
}
