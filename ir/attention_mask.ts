// How attention's additive mask broadcasts over the query slabs, as PyTorch's attn_mask does: the mask
// [..., Tq or 1, Tk] is aligned with q's [..., heads, Tq] from the right, and each of its axes is q's
// size or 1. The kernels see q as BH slabs of heads; slab bh is (batch b = bh / heads, head h = bh %
// heads), and query i of it reads mask row b * batch + h * head + i * row (element strides, 0 along an
// axis the mask broadcasts over). The axes before the heads are one batch axis to the kernels, so the
// mask has all of them or none.
import { type Shape, formatShape, numel, shapeEq } from "./types.ts";

export interface MaskLayout {
  /** Query heads per batch (q's axis -3; the slab count for a q of rank 3). */
  heads: number;
  /** Element strides of the mask along the batch, the heads and the queries: 0 where it broadcasts. */
  batch: number;
  head: number;
  row: number;
}

/** The mask's layout against q [..., Tq, D] and Tk keys, or a sentence saying why the shapes do not fit. */
export function maskLayout(q: Shape, Tk: number, mask: Shape): MaskLayout | string {
  const slabs = q.slice(0, -2); // [..., heads]
  const Tq = q[q.length - 2];
  const wanted = `[${[...slabs, Tq].map((d) => `${d} or 1`).join(", ")}, ${Tk}], or fewer leading axes`;
  const problem = `the mask ${formatShape(mask)} does not broadcast to the scores ${formatShape([...slabs, Tq, Tk])}: it must be ${wanted}`;
  if (mask.length < 2 || mask.length > slabs.length + 2 || mask[mask.length - 1] !== Tk) return problem;
  const aligned = [...Array<number>(slabs.length + 2 - mask.length).fill(1), ...mask]; // [..., heads, Tq, Tk]
  const full = [...slabs, Tq, Tk];
  if (aligned.some((d, a) => d !== 1 && d !== full[a])) return problem;
  const [qBatch, maskBatch] = [full.slice(0, slabs.length - 1), aligned.slice(0, slabs.length - 1)];
  const hasBatch = numel(qBatch) > 1 && maskBatch.some((d) => d !== 1);
  if (hasBatch && !shapeEq(maskBatch, qBatch))
    return `the mask ${formatShape(mask)} broadcasts over some of the batch axes ${formatShape(qBatch)} of q but not all of them`;
  const heads = slabs[slabs.length - 1];
  const [maskHeads, maskRows] = aligned.slice(-3, -1);
  const row = maskRows === 1 && Tq !== 1 ? 0 : Tk;
  const rows = row === 0 ? 1 : Tq;
  const head = maskHeads === 1 && heads !== 1 ? 0 : rows * Tk;
  return { heads, row, head, batch: hasBatch ? (head === 0 ? 1 : heads) * rows * Tk : 0 };
}

/** Whether the mask is one [Tq, Tk] matrix for every slab: the layout the kernels assume without strides. */
export function isSharedMask(m: MaskLayout): boolean {
  return m.batch === 0 && m.head === 0 && m.row !== 0;
}
