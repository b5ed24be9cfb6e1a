// The plan the compiler chose, in words, for the HTML report: what the backward recomputes, which blocks'
// saved activations spend the step in host memory, where model data lives (chunks on the device and on
// the host), and the step time the cost model predicts.
import { graphFlops } from "../../ir/flops.ts";
import { formatBytes } from "../../base/units.ts";
import type { Plan } from "../../plan/plan.ts";

export interface PlanRow {
  /** Stable id for tests and links. */
  id: string;
  name: string;
  value: string;
}

const ms = (s: number) => `${(s * 1000).toFixed(1)} ms`;

function recomputeText(plan: Plan): string {
  const c = plan.checkpoint;
  const share = `${((100 * c.recomputeFlops) / graphFlops(plan.train.graph)).toFixed(1)}% of the step's FLOPs`;
  switch (c.mode) {
    case "none":
      return "none: the backward recomputes nothing";
    case "selective":
      return `selective: the backward recomputes attention (${share})`;
    default:
      return `blocks: the backward recomputes ${c.regions} of ${c.totalRegions} blocks from their inputs (${share})`;
  }
}

function movedText(plan: Plan): string {
  const c = plan.checkpoint;
  if (c.moved === 0) return "none: saved activations stay on the device";
  const blocks = c.moved === 1 ? "block 0" : `blocks 0-${c.moved - 1}`;
  return (
    `${blocks} of ${c.totalRegions} keep their saved activations in host memory: ${formatBytes(c.movedBytes)} out in the ` +
    `forward and back in the backward, copies ${c.moveLookahead} block${c.moveLookahead === 1 ? "" : "s"} ahead`
  );
}

function placementText(plan: Plan): string {
  const c = plan.checkpoint;
  const s = c.schedule;
  if (!c.offload || !s)
    return `all on the device: ${formatBytes(plan.persistent.paramBytes + plan.persistent.optStateBytes)} of parameters and AdamW states`;
  const total = plan.chunks.chunks.length;
  return (
    `${s.resident.size} of ${total} chunks of model data on the device, ${total - s.resident.size} in host memory ` +
    `(${formatBytes(plan.hostBytes)}); ${formatBytes(c.transferBytes)} moved per step, copies ${s.lookahead} loads ahead, ` +
    `${s.keep.size} kept on the device from the forward for the backward`
  );
}

/** How much of the collectives' time overlapped compute hides, or why none does. */
export function hiddenText(plan: Plan): string {
  const p = plan.checkpoint.predicted;
  const ahead = plan.decisions.zero === 3 ? `, each gather started ${plan.checkpoint.gatherLookahead} ahead` : "";
  if (plan.checkpoint.overlapsCollectives) return ` (${(p.hiddenNetworkSeconds * 1000).toFixed(1)} ms of it hidden behind compute${ahead})`;
  if (plan.decisions.dp === 1) return ""; // tensor parallelism's collectives always block
  return plan.decisions.overlap ? " (blocking: the overlapped step does not fit the device)" : " (blocking: --overlap off)";
}

export function chosenPlanRows(plan: Plan): PlanRow[] {
  const p = plan.checkpoint.predicted;
  const collectives = p.networkSeconds > 0 ? `, collectives ${ms(p.networkSeconds)}${hiddenText(plan)}` : "";
  const link =
    plan.checkpoint.offload || plan.checkpoint.moved > 0 ? `, link busy ${ms(p.linkSeconds)}, compute waits ${ms(p.stallSeconds)}` : "";
  return [
    { id: "checkpoint", name: "checkpointing", value: recomputeText(plan) },
    { id: "moved", name: "moved activations", value: movedText(plan) },
    { id: "placement", name: "model data", value: placementText(plan) },
    { id: "predicted", name: "predicted step", value: `${ms(p.seconds)} (compute ${ms(p.computeSeconds)}${collectives}${link})` },
  ];
}
