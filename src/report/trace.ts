// One training step as a Chrome trace (the JSON event format that chrome://tracing, Perfetto and the
// PyTorch and JAX profilers' exports share): one track per stream (compute, host→device, device→host,
// host AdamW, collectives), one complete event per node, named by its op and model line, with its bytes
// and FLOPs as arguments. `stow plan --trace` fills the times from the cost model, `stow train --trace`
// from the profiled steps, and both list the same events in the same order: the training program's.
import { writeFileSync } from "node:fs";
import { type Lane, simulateStep } from "../../ir/cost_model.ts";
import { isComputeOp, opKind } from "../../ir/ops.ts";
import { nodeFlops } from "../../ir/flops.ts";
import { type Node, formatLoc, valueBytes } from "../../ir/types.ts";
import { UserError } from "../../base/errors.ts";
import { type Plan, meshOf } from "../../plan/plan.ts";
import type { NodeProfile } from "../../plan/node_profile.ts";

/** The tracks, in the order a viewer lists them (their thread ids). */
export const TRACKS = ["compute", "host→device", "device→host", "host AdamW", "collectives"] as const;
export type Track = (typeof TRACKS)[number];

const LANE_TRACK: Record<Lane, Track> = { compute: "compute", h2d: "host→device", d2h: "device→host", host: "host AdamW" };

/** A node's work on its track: seconds from the step's start. */
export interface TimedNode {
  node: Node;
  position: number;
  lane: Lane;
  start: number;
  seconds: number;
}

/** Where a node's work runs, or undefined for nodes that run nothing (views, waits, parameters). */
export function laneOf(n: Node): Lane | undefined {
  if (n.op === "chunk_h2d") return "h2d";
  if (n.op === "copy_d2h") return "d2h";
  if (n.op === "adamw" && n.placement === "host") return "host";
  return isComputeOp(n.op) ? "compute" : undefined;
}

/** The predicted step: the cost model's play-out of the plan on its machine. */
export function predictedTimeline(plan: Plan): TimedNode[] {
  const g = plan.train.graph;
  const positions = new Map(g.nodes.map((n, i) => [n.id, i]));
  const timed: TimedNode[] = [];
  simulateStep(g, plan.machine, {
    measured: plan.decisions.measured,
    mesh: meshOf(plan.decisions),
    diskIo: plan.train.memory.diskIo,
    record: (node, lane, start, seconds) => timed.push({ node, position: positions.get(node.id)!, lane, start, seconds }),
  });
  return timed.sort((a, b) => a.position - b.position);
}

/** The measured step: the last profiled step's node times and the transfer engine's jobs (runtime/core/profile.cpp). */
export function measuredTimeline(plan: Plan, profile: NodeProfile): TimedNode[] {
  const g = plan.train.graph;
  const t = profile.timeline;
  if (!t || t.node_start.length !== g.nodes.length)
    throw new UserError("the profile has no timeline of this plan's training program; profile the run again with this version");
  const jobs = new Map(t.jobs.map(([node, , start, end]) => [node, { start, end }]));
  return g.nodes.flatMap((node, position): TimedNode[] => {
    const lane = laneOf(node);
    if (lane === undefined) return [];
    const span = lane === "compute" ? { start: t.node_start[position], end: t.node_end[position] } : jobs.get(position);
    if (!span || span.start < 0)
      throw new Error(`internal: the profiled step has no time for node ${position} (${node.op} at ${formatLoc(node.loc)})`);
    return [{ node, position, lane, start: span.start, seconds: span.end - span.start }];
  });
}

function trackOf(t: TimedNode): Track {
  return t.lane === "compute" && opKind(t.node.op) === "collective" ? "collectives" : LANE_TRACK[t.lane];
}

/** The trace event JSON: thread names, then one complete ("X") event per node, in microseconds. */
export function chromeTrace(timeline: readonly TimedNode[], title: string): object {
  const pid = 1;
  const tid = (track: Track) => TRACKS.indexOf(track) + 1;
  const us = (s: number) => Math.round(s * 1e9) / 1e3;
  return {
    displayTimeUnit: "ms",
    otherData: { title },
    traceEvents: [
      { ph: "M", pid, name: "process_name", args: { name: title } },
      ...TRACKS.map((track) => ({ ph: "M", pid, tid: tid(track), name: "thread_name", args: { name: track } })),
      ...TRACKS.map((track) => ({ ph: "M", pid, tid: tid(track), name: "thread_sort_index", args: { sort_index: tid(track) } })),
      ...timeline.map((e) => {
        // The step's own nodes (the gradient norm) come from no model line.
        const where = e.node.loc ? ` ${e.node.loc.file}:${e.node.loc.line}` : "";
        const bytes =
          e.lane === "h2d" || e.lane === "d2h"
            ? valueBytes(e.node.outputs[0])
            : [...e.node.inputs, ...e.node.outputs].reduce((s, v) => s + valueBytes(v), 0);
        return {
          ph: "X",
          pid,
          tid: tid(trackOf(e)),
          cat: trackOf(e),
          name: `${e.node.op}${where}`,
          ts: us(e.start),
          dur: us(e.seconds),
          args: { op: e.node.op, node: e.position, line: e.node.loc ? formatLoc(e.node.loc) : null, bytes, flops: nodeFlops(e.node) },
        };
      }),
    ],
  };
}

export function writeTrace(file: string, timeline: readonly TimedNode[], title: string): void {
  writeFileSync(file, JSON.stringify(chromeTrace(timeline, title)) + "\n");
}
