// `stow plan --html FILE`: one self-contained page (no scripts, no external files) with the plan's
// summary and the device memory over the step as an SVG stacked area chart, predicted before running.
import { writeFileAtomic } from "../util/atomic_write.ts";
import path from "node:path";
import { fileURLToPath } from "node:url";
import nunjucks from "nunjucks";
import { formatLoc } from "../../ir/types.ts";
import { formatBytes } from "../../base/units.ts";
import type { Plan } from "../../plan/plan.ts";
import { paramCount } from "../../plan/plan.ts";
import { TIMELINE_KINDS, type Timeline, deviceTimeline } from "./timeline.ts";
import { chosenPlanRows } from "./chosen_plan.ts";
import { predictedTimeline } from "./trace.ts";

const templates = new nunjucks.Environment(
  new nunjucks.FileSystemLoader(path.join(path.dirname(fileURLToPath(import.meta.url)), "templates")),
  { autoescape: true, throwOnUndefined: true },
);

const COLORS = ["#4e79a7", "#59a14f", "#f28e2b", "#e15759", "#b07aa1"];
const [WIDTH, HEIGHT, LEFT, BOTTOM, TOP] = [960, 400, 80, 80, 20];
const TIME_TICKS = 6;
const LABEL_GAP = 60;
const MAX_POINTS = 1200;

/**
 * When each node position starts in the cost model's play-out of the step: its compute start, or the
 * last one before it for nodes that compute nothing (views, copies handed to the link).
 */
function predictedStarts(plan: Plan): { starts: Float64Array; seconds: number } {
  const starts = new Float64Array(plan.train.graph.nodes.length).fill(NaN);
  for (const e of predictedTimeline(plan)) if (e.lane === "compute") starts[e.position] = e.start;
  for (let i = 0; i < starts.length; i++) if (Number.isNaN(starts[i])) starts[i] = i > 0 ? starts[i - 1] : 0;
  return { starts, seconds: plan.checkpoint.predicted.seconds };
}

function formatMs(seconds: number): string {
  const ms = seconds * 1000;
  return `${ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : ms.toFixed(0)} ms`;
}

/** Stacked areas as SVG path data, bucketed to at most MAX_POINTS columns (each bucket keeps its peak). */
function chart(t: Timeline, budget: number | undefined, time: { starts: Float64Array; seconds: number }) {
  const buckets = Math.min(MAX_POINTS, t.length);
  const per = t.length / buckets;
  const stacked: number[][] = [];
  for (let b = 0; b < buckets; b++) {
    const [from, to] = [Math.floor(b * per), Math.max(Math.floor(b * per) + 1, Math.floor((b + 1) * per))];
    // The position in the bucket with the most live bytes stands for it, so peaks are not averaged away.
    let best = from;
    let bestTotal = -1;
    for (let i = from; i < to; i++) {
      const total = TIMELINE_KINDS.reduce((s, k) => s + t.series[k][i], 0);
      if (total > bestTotal) [best, bestTotal] = [i, total];
    }
    let acc = 0;
    stacked.push(TIMELINE_KINDS.map((k) => (acc += t.series[k][best])));
  }
  const top = Math.max(budget ?? 0, ...stacked.map((s) => s[s.length - 1])) * 1.05 || 1;
  const x = (b: number) => LEFT + (b / Math.max(1, buckets - 1)) * (WIDTH - LEFT - 10);
  const y = (bytes: number) => TOP + (1 - bytes / top) * (HEIGHT - TOP - BOTTOM);
  const areas = TIMELINE_KINDS.map((kind, k) => {
    const upper = stacked.map((s, b) => `${x(b).toFixed(1)},${y(s[k]).toFixed(1)}`);
    const lower = stacked.map((s, b) => `${x(b).toFixed(1)},${y(k === 0 ? 0 : s[k - 1]).toFixed(1)}`).reverse();
    return { kind, color: COLORS[k], d: `M${upper.join("L")}L${lower.join("L")}Z` };
  });
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => ({ y: y(f * top).toFixed(1), label: formatBytes(f * top) }));
  const toX = (position: number) => x(position / per).toFixed(1);
  const positionTicks = [0, 0.25, 0.5, 0.75, 1]
    .map((f) => Math.round(f * (t.length - 1)))
    .map((p, k) => ({ x: toX(p), label: String(p), anchor: k === 0 ? "start" : k === 4 ? "end" : "middle" }));
  // The time axis: where the cost model's clock passes each tick, found on the node axis (compute is in
  // node order, so its clock only moves forward along it).
  const timeTicks = Array.from({ length: TIME_TICKS }, (_, k) => (k * time.seconds) / (TIME_TICKS - 1)).map((s) => {
    const at = time.starts.findIndex((v) => v >= s - 1e-12);
    return { x: toX(at < 0 ? t.length - 1 : at), label: formatMs(s), anchor: "middle" };
  });
  // A long node (the LM head) carries several ticks at once: their labels would overprint, so a label
  // closer than LABEL_GAP to the one before is left off (the last one, the step time, always stays).
  let lastLabelled = -Infinity;
  timeTicks.forEach((tick, k) => {
    const last = k === timeTicks.length - 1;
    if (Number(tick.x) - lastLabelled < LABEL_GAP && !last) tick.label = "";
    else lastLabelled = Number(tick.x);
  });
  const labelled = timeTicks.filter((tick) => tick.label !== "");
  if (labelled.length > 1 && Number(labelled.at(-1)!.x) - Number(labelled.at(-2)!.x) < LABEL_GAP) labelled.at(-2)!.label = "";
  timeTicks[0].anchor = "start";
  timeTicks[timeTicks.length - 1].anchor = "end";
  return {
    width: WIDTH,
    height: HEIGHT,
    left: LEFT,
    bottom: HEIGHT - BOTTOM,
    right: WIDTH - 10,
    areas,
    ticks,
    positionTicks,
    timeTicks,
    budget: budget === undefined ? null : { y: y(budget).toFixed(1), label: `device budget ${formatBytes(budget)}` },
    phases: t.phases.map((p) => ({ x: toX(p.start), name: p.name })),
    transfers: t.transfers.map((tr) => ({ x: toX(tr.position), direction: tr.direction })),
  };
}

export function planHtml(plan: Plan): string {
  const m = plan.train.memory;
  return templates.render("plan.html.njk", {
    model: plan.modelPath,
    config: Object.entries(plan.config)
      .map(([k, v]) => `${k}=${v}`)
      .join(" "),
    step: `batch ${plan.train.batch} × seq ${plan.train.seq}`,
    params: paramCount(plan).toLocaleString("en-US"),
    peak: formatBytes(m.peak),
    peakBytes: m.peak,
    chosen: chosenPlanRows(plan),
    breakdown: Object.entries(m.breakdown).map(([k, v]) => ({ kind: k.replace("_", " "), bytes: formatBytes(v) })),
    chart: chart(deviceTimeline(plan), plan.decisions.deviceBudget, predictedStarts(plan)),
    largest: [...m.buffers]
      .sort((a, b) => b.bytes - a.bytes)
      .slice(0, 10)
      .map((b) => ({
        bytes: formatBytes(b.bytes),
        kind: b.kind,
        op: b.node.op,
        live: `${b.start}..${b.end}`,
        loc: formatLoc(b.node.loc),
      })),
  });
}

export function writePlanHtml(plan: Plan, file: string): void {
  writeFileAtomic(file, planHtml(plan));
}
