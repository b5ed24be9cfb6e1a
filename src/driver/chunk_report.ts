// The chunk table of an offloaded plan: each chunk's size and contents, where it lives, and what moves
// for it per training step (its parameter copies in, its gradients out; at ZeRO 3 this rank's shards of them).
import { numel, valueBytes } from "../../ir/types.ts";
import { shardGradKey } from "../../ir/passes/chunks.ts";
import { formatBytes } from "../../base/units.ts";
import type { Plan } from "../../plan/plan.ts";

export interface ChunkRow {
  index: number;
  bytes: number;
  params: string[];
  placement: "device" | "host";
  /** Copies of the chunk to the device per step (one per phase that reads it, one if kept). */
  h2d_copies: number;
  h2d_bytes: number;
  /** Gradient bytes that go back to the host per step. */
  d2h_bytes: number;
  /** Its forward copy stays on the device through the backward. */
  kept: boolean;
}

export function chunkRows(plan: Plan): ChunkRow[] {
  const schedule = plan.checkpoint.schedule;
  const g = plan.train.graph;
  const copies = new Map<number, number>();
  const copiedBytes = new Map<number, number>();
  const gradBytes = new Map<string, number>();
  for (const n of g.nodes) {
    if (n.payload !== "model") continue;
    if (n.op === "chunk_h2d") {
      copies.set(n.attrs.chunk!, (copies.get(n.attrs.chunk!) ?? 0) + 1);
      copiedBytes.set(n.attrs.chunk!, (copiedBytes.get(n.attrs.chunk!) ?? 0) + valueBytes(n.outputs[0]));
    }
    if (n.op === "copy_d2h") gradBytes.set(n.attrs.name.replace(/^grad\./, ""), 4 * numel(n.outputs[0].shape));
  }
  return plan.chunks.chunks.map((c) => {
    const onHost = schedule !== undefined && !schedule.resident.has(c.index);
    const h2d = copies.get(c.index) ?? 0;
    return {
      index: c.index,
      bytes: c.bytes,
      params: c.params,
      placement: onHost ? "host" : "device",
      h2d_copies: h2d,
      h2d_bytes: copiedBytes.get(c.index) ?? 0,
      // Each parameter's gradient, or at ZeRO 3 the chunk's gradient shard.
      d2h_bytes: [...c.params, shardGradKey(c.index)].reduce((s, name) => s + (gradBytes.get(name) ?? 0), 0),
      kept: schedule?.keep.has(c.index) ?? false,
    };
  });
}

export function chunkTableText(plan: Plan): string {
  const rows = chunkRows(plan);
  const layout = plan.chunks;
  const lines = [
    `chunks     ${rows.length} of at most ${formatBytes(layout.capacity)} (${{ given: "--chunk-size", searched: "least waste", finest: "the finest: the least waste did not fit" }[layout.chosen]}), ` +
      `copies start ${plan.checkpoint.schedule?.lookahead ?? 0} loads ahead`,
    `  ${"#".padStart(3)} ${"size".padStart(10)}  placement  ${"in/step".padStart(10)}  ${"out/step".padStart(10)}  contents`,
  ];
  const shown = rows.length > 12 ? [...rows.slice(0, 6), undefined, ...rows.slice(-5)] : rows;
  for (const r of shown) {
    if (!r) {
      lines.push(`  ... ${rows.length - 11} more`);
      continue;
    }
    const contents = r.params.length === 1 ? r.params[0] : `${r.params[0]} .. ${r.params.at(-1)} (${r.params.length} tensors)`;
    const placement = r.placement + (r.kept ? "*" : "");
    lines.push(
      `  ${String(r.index).padStart(3)} ${formatBytes(r.bytes).padStart(10)}  ${placement.padEnd(9)}  ` +
        `${formatBytes(r.h2d_bytes).padStart(10)}  ${formatBytes(r.d2h_bytes).padStart(10)}  ${contents}`,
    );
  }
  if (rows.some((r) => r.kept)) lines.push("  * copied once per step: the forward's copy stays on the device for the backward");
  return lines.join("\n");
}
