// Static offsets for every temporary in one arena, from liveness intervals: buffers are placed by
// decreasing size, each into the smallest gap between already-placed buffers that overlap it in time
// (best fit, as XLA's heap simulator does). The result's peak is the arena size this program needs.
import type { LiveBuffer } from "./liveness.ts";

export const ALIGN = 64;

export function alignUp(n: number): number {
  return Math.ceil(n / ALIGN) * ALIGN;
}

export interface Placement {
  /** Buffer key -> byte offset within the dynamic region. */
  offsets: Map<number, number>;
  /** Highest byte written: max over buffers of offset + bytes (what the runtime measures). */
  peak: number;
}

export function placeBuffers(buffers: readonly LiveBuffer[]): Placement {
  const order = [...buffers].sort((a, b) => b.bytes - a.bytes || a.start - b.start || a.key - b.key);
  const placed: { start: number; end: number; offset: number; size: number }[] = [];
  const offsets = new Map<number, number>();
  let peak = 0;
  for (const buf of order) {
    const size = alignUp(buf.bytes);
    const overlapping = placed
      .filter((p) => p.start <= buf.end && buf.start <= p.end)
      .sort((a, b) => a.offset - b.offset);
    let best = -1;
    let bestGap = Infinity;
    let cursor = 0;
    for (const p of overlapping) {
      const gap = p.offset - cursor;
      if (gap >= size && gap < bestGap) {
        best = cursor;
        bestGap = gap;
      }
      cursor = Math.max(cursor, p.offset + p.size);
    }
    const offset = best >= 0 ? best : cursor;
    placed.push({ start: buf.start, end: buf.end, offset, size });
    offsets.set(buf.key, offset);
    peak = Math.max(peak, offset + buf.bytes);
  }
  return { offsets, peak };
}
