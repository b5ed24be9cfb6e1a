// The planning section of bench/RESULTS.md: planning time by model size (bench/planning.ts).
import { table } from "./markdown.ts";
import type { PlanningResults } from "./planning.ts";

export function planningMarkdown(r: PlanningResults): string {
  return [
    "## Planning time by model size",
    "",
    `\`compilePlan\` on GPT-2's family at width 4096 (the family \`stow capacity\` grows), batch ${r.step.batch} x seq ` +
      `${r.step.seq}, 2 threads: the plain step, and the step under the RTX 3090 profile (23.5 GiB of device, 256 GiB ` +
      "of host, `--checkpoint auto`: the offload schedule searched, as each member of the capacity search is). " +
      `Wall and CPU seconds in one process, smallest first; the machine is shared, so the load average before each. Run ${r.date}.`,
    "",
    table(
      ["layers", "budget", "training nodes", "fits", "wall (s)", "cpu (s)", "load average before"],
      r.timings.map((t) => [
        String(t.layers),
        t.budget,
        t.nodes === null ? "-" : String(t.nodes),
        t.fits ? "yes" : "no (host)",
        t.wall_seconds.toFixed(1),
        t.cpu_seconds.toFixed(1),
        t.load_average_before.join(", "),
      ]),
    ),
    "",
  ].join("\n");
}
