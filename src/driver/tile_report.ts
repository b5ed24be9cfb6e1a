// The kernel tiles a plan chose, for `stow plan`: the fused LM head computes its logits a tile at a time,
// and under a tight --device-memory the planner may pick a tile smaller than the default
// (plan/strategies/kernel_tiles.ts). Saying which, and what it costs in workspace, explains a peak.
import { formatBytes } from "../../base/units.ts";
import { lmHeadDims, lmHeadWorkspace } from "../../ir/ops.ts";
import { lmHeadTile } from "../../ir/passes/fuse_lm_head.ts";
import type { Plan } from "../../plan/plan.ts";

export interface LmHeadTileRow {
  rows: number;
  cols: number;
  workspace_bytes: number;
  default_rows: number;
  default_cols: number;
  default_workspace_bytes: number;
}

/** The fused LM head's tile in the training program, beside the default one; null without a fused head. */
export function lmHeadTileRow(plan: Plan): LmHeadTileRow | null {
  const head = plan.train.graph.nodes.find((n) => n.op === "linear_cross_entropy");
  if (head === undefined || head.op !== "linear_cross_entropy") return null;
  const dims = lmHeadDims(head.inputs, head.attrs);
  const chosen = { rows: dims.rows, cols: dims.cols };
  const standard = lmHeadTile(dims.N, dims.V);
  return {
    ...chosen,
    workspace_bytes: lmHeadWorkspace(chosen),
    default_rows: standard.rows,
    default_cols: standard.cols,
    default_workspace_bytes: lmHeadWorkspace(standard),
  };
}

/** One line for the text report, or none. */
export function lmHeadTileText(plan: Plan): string[] {
  const t = lmHeadTileRow(plan);
  if (t === null) return [];
  const tile = `${t.rows} x ${t.cols} logits (workspace ${formatBytes(t.workspace_bytes)})`;
  const isDefault = t.rows === t.default_rows && t.cols === t.default_cols;
  return [
    isDefault
      ? `LM head    fused, tile ${tile}: the default`
      : `LM head    fused, tile ${tile}: smaller than the default ${t.default_rows} x ${t.default_cols} ` +
        `(${formatBytes(t.default_workspace_bytes)}) to fit the device budget; same results, more and smaller products`,
  ];
}
