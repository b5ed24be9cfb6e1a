// Device memory over one training step, as the plan predicts it: at every node position, the bytes
// live on the device by kind. Model data that stays resident counts for the whole step; temporaries
// count over their liveness intervals.
import type { BufferKind } from "../../ir/passes/liveness.ts";
import { liveBytesByKind } from "../../ir/passes/memory_plan.ts";
import type { Plan } from "../../plan/plan.ts";
import { valueBytes } from "../../ir/types.ts";

export const TIMELINE_KINDS = ["parameters", "optimizer states", "gradients", "activations", "workspace"] as const;
export type TimelineKind = (typeof TIMELINE_KINDS)[number];

const KIND_OF: Record<BufferKind, TimelineKind> = {
  parameter: "parameters",
  gradient: "gradients",
  activation: "activations",
  input: "activations",
  workspace: "workspace",
};

export interface Timeline {
  /** Bytes live at each node position, by kind. */
  series: Record<TimelineKind, Float64Array>;
  /** First node position of each phase. */
  phases: { name: string; start: number }[];
  /** Node positions of host-to-device and device-to-host copies. */
  transfers: { position: number; direction: "h2d" | "d2h"; bytes: number }[];
  length: number;
}

export function deviceTimeline(plan: Plan): Timeline {
  const { graph, memory } = plan.train;
  const length = graph.nodes.length;
  const series = Object.fromEntries(TIMELINE_KINDS.map((k) => [k, new Float64Array(length)])) as Record<TimelineKind, Float64Array>;
  series.parameters.fill(plan.persistent.paramBytes);
  series["optimizer states"].fill(plan.persistent.optStateBytes);
  const live = liveBytesByKind(memory.buffers, length);
  for (const [kind, bytes] of Object.entries(live) as [BufferKind, Float64Array][]) {
    const s = series[KIND_OF[kind]];
    for (let i = 0; i < length; i++) s[i] += bytes[i];
  }
  const phases: { name: string; start: number }[] = [];
  const transfers: Timeline["transfers"] = [];
  graph.nodes.forEach((n, i) => {
    if (phases.at(-1)?.name !== n.phase) phases.push({ name: n.phase, start: i });
    if (n.op === "chunk_h2d" || n.op === "copy_d2h")
      transfers.push({ position: i, direction: n.op === "chunk_h2d" ? "h2d" : "d2h", bytes: valueBytes(n.outputs[0]) });
  });
  return { series, phases, transfers, length };
}
