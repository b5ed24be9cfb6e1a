// Saved activations that spend the step in host memory (ir/passes/offload_activations.ts): which blocks,
// how many bytes go out in the forward and come back in the backward, and the model lines that made them,
// for `stow plan` beside what is recomputed.
import { formatLoc, valueBytes } from "../../ir/types.ts";
import { formatBytes } from "../../base/units.ts";
import type { Candidate, Plan } from "../../plan/plan.ts";

export interface MovedRow {
  /** Checkpoint region (block). */
  region: number;
  /** Model line of the value's producer. */
  loc: string;
  /** Values of that line in that block, and their bytes (each goes out once and back once per step). */
  values: number;
  bytes: number;
}

/** One row per block and model line, in block order, then line order within the block. */
export function movedRows(plan: Plan): MovedRow[] {
  const rows = new Map<string, MovedRow>();
  for (const n of plan.train.graph.nodes) {
    if (n.op !== "copy_d2h" || n.payload !== "activation") continue;
    const region = Number(String(n.attrs.name).split(".")[1]);
    const loc = formatLoc(n.loc);
    const key = `${region} ${loc}`;
    const row = rows.get(key) ?? { region, loc, values: 0, bytes: 0 };
    row.values++;
    row.bytes += valueBytes(n.outputs[0]);
    rows.set(key, row);
  }
  return [...rows.values()];
}

export function movedText(plan: Plan): string {
  const c = plan.checkpoint;
  const rows = movedRows(plan);
  const lines = [
    `${c.movesCheckpointsOnly ? "checkpoints (the blocks are recomputed)" : "activations"} moved to host memory: ` +
      `${c.moved} of ${c.totalRegions} blocks, ${formatBytes(c.movedBytes)} out and ` +
      `back per step, copies ${c.moveLookahead} block${c.moveLookahead === 1 ? "" : "s"} ahead`,
  ];
  const perRegion = new Map<number, number>();
  for (const r of rows) perRegion.set(r.region, (perRegion.get(r.region) ?? 0) + r.bytes);
  lines.push(`  blocks: ${[...perRegion].map(([region, bytes]) => `${region} (${formatBytes(bytes)})`).join(", ")}`);
  const perLine = new Map<string, { values: number; bytes: number }>();
  for (const r of rows) {
    const l = perLine.get(r.loc) ?? { values: 0, bytes: 0 };
    perLine.set(r.loc, { values: l.values + r.values, bytes: l.bytes + r.bytes });
  }
  const largest = [...perLine].sort((a, b) => b[1].bytes - a[1].bytes);
  for (const [loc, l] of largest.slice(0, 8)) lines.push(`  ${formatBytes(l.bytes).padStart(12)}  x${String(l.values).padEnd(4)} ${loc}`);
  if (largest.length > 8) lines.push(`  ... ${largest.length - 8} more model lines`);
  return lines.join("\n");
}

/** The checkpoint choice in a few words: `blocks 2/12`, `blocks 2/12 + move 3/12`, `move 4/12`, `blocks, checkpoints moved`. */
export function checkpointLabel(c: Candidate): string {
  if (c.movesCheckpointsOnly) return "blocks, checkpoints moved";
  const recomputed = c.mode === "blocks" && c.regions < c.totalRegions ? `blocks ${c.regions}/${c.totalRegions}` : c.mode;
  if (c.moved === 0) return recomputed;
  const moved = `move ${c.moved}/${c.totalRegions}`;
  return c.mode === "none" ? moved : `${recomputed} + ${moved}`;
}
