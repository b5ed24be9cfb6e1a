// The tensor-parallel part of `stow plan`: every rank runs the same program, so the memory plan is
// each rank's; here, what a rank's parameters are made of (its share of the sharded ones plus the
// replicated ones) and the collectives of one training step with the bytes each moves.
import { type Collective, collectives } from "../../ir/collectives.ts";
import { type Graph, formatLoc, numel } from "../../ir/types.ts";
import { formatBytes } from "../../base/units.ts";
import type { Plan } from "../../plan/plan.ts";

export interface TensorParallelReport {
  ranks: number;
  /** Parameter bytes each rank holds: its parts of the sharded parameters plus the replicated ones. */
  param_bytes_per_rank: number;
  sharded_param_bytes_per_rank: number;
  replicated_param_bytes: number;
  collective_calls_per_step: number;
  collective_bytes_per_step: number;
  collectives: { op: string; reduce: string | null; phase: string; recompute: boolean; bytes: number; loc: string }[];
}

export function tensorParallelReport(plan: Plan): TensorParallelReport {
  const g = plan.train.graph;
  const bytesOf = (sharded: boolean) =>
    g.params.filter((p) => (p.shard !== undefined) === sharded).reduce((s, p) => s + 4 * numel(p.shape), 0);
  const list = collectives(g);
  return {
    ranks: plan.decisions.ranks,
    param_bytes_per_rank: bytesOf(true) + bytesOf(false),
    sharded_param_bytes_per_rank: bytesOf(true),
    replicated_param_bytes: bytesOf(false),
    collective_calls_per_step: list.length,
    collective_bytes_per_step: list.reduce((s, c) => s + c.bytes, 0),
    collectives: list.map(({ node, bytes }) => ({
      op: node.op,
      reduce: node.op === "all_reduce" ? node.attrs.reduce : null,
      phase: node.phase,
      recompute: node.attrs.recompute === true,
      bytes,
      loc: formatLoc(node.loc),
    })),
  };
}

export function tensorParallelText(plan: Plan): string {
  const r = tensorParallelReport(plan);
  const lines = [
    `tensor parallel: ${r.ranks} ranks, one process each; the memory plan above is each rank's`,
    `  parameters per rank ${formatBytes(r.param_bytes_per_rank)}: sharded ${formatBytes(r.sharded_param_bytes_per_rank)} ` +
      `(1/${r.ranks} each) + replicated ${formatBytes(r.replicated_param_bytes)}`,
    `  collectives per step: ${r.collective_calls_per_step} calls moving ${formatBytes(r.collective_bytes_per_step)} ` +
      `(${r.collective_bytes_per_step} bytes; each counts the whole tensor it combines)`,
  ];
  for (const [label, group] of groupCollectives(plan.train.graph))
    lines.push(`    ${label.padEnd(44)} x${String(group.length).padEnd(4)} ${formatBytes(group[0].bytes).padStart(10)} each`);
  return lines.join("\n");
}

/** Collectives alike (op, reduction, phase, model line, size) are listed once, with their count. */
function groupCollectives(g: Graph): Map<string, Collective[]> {
  const groups = new Map<string, Collective[]>();
  for (const c of collectives(g)) {
    const n = c.node;
    const op = `${n.op}${n.op === "all_reduce" ? `(${n.attrs.reduce}${n.attrs.group === "dp" ? " over dp" : ""})` : ""} ${n.phase}${n.attrs.recompute ? " recomputed" : ""}`;
    const label = `${op.padEnd(28)} ${n.loc ? formatLoc(n.loc) : ""}`;
    const key = `${label} ${c.bytes}`;
    groups.set(key, [...(groups.get(key) ?? []), c]);
  }
  return new Map([...groups].map(([key, list]) => [key.slice(0, key.lastIndexOf(" ")), list]));
}
