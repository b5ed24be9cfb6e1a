// Static offsets for every temporary in one arena, from liveness intervals: buffers are placed by
// decreasing size, each into the smallest gap between already-placed buffers that overlap it in time
// (best fit, as XLA's heap simulator does). The result's peak is the arena size this program needs.
// Given a limit, placement stops as soon as the peak exceeds it: a plan search discards such plans.
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
  return placeBuffersWithin(buffers, Infinity)!;
}

/** The placement of `buffers`, or undefined as soon as its peak exceeds `limit` bytes (the peak only grows). */
export function placeBuffersWithin(buffers: readonly LiveBuffer[], limit: number): Placement | undefined {
  const order = [...buffers].sort((a, b) => b.bytes - a.bytes || a.start - b.start || a.key - b.key);
  const placed = new PlacedBuffers(
    order.length,
    order.reduce((m, b) => Math.max(m, b.end), 0),
  );
  const offsets = new Map<number, number>();
  let peak = 0;
  for (const buf of order) {
    const size = alignUp(buf.bytes);
    let best = -1;
    let bestGap = Infinity;
    let cursor = 0;
    // The placed buffers live at the same time as this one, in order of offset: the gaps between them.
    const { items, length } = placed.candidates(buf.start, buf.end);
    for (let i = 0; i < length; i++) {
      const j = items[i];
      if (placed.start[j] > buf.end || buf.start > placed.end[j]) continue;
      const gap = placed.offset[j] - cursor;
      if (gap >= size && gap < bestGap) {
        best = cursor;
        bestGap = gap;
        if (gap === size) break; // a gap that fits exactly: no later gap can be smaller and still fit
      }
      if (placed.top[j] > cursor) cursor = placed.top[j];
    }
    const offset = best >= 0 ? best : cursor;
    placed.add(buf.start, buf.end, offset, size);
    offsets.set(buf.key, offset);
    peak = Math.max(peak, offset + buf.bytes);
    if (peak > limit) return undefined;
  }
  return { offsets, peak };
}

/** Node positions per time bucket at the finest level of PlacedBuffers; each level's are LEVEL_FACTOR times more. */
const FINEST_BUCKET = 64;
const LEVEL_FACTOR = 8;

/** Indices of placed buffers, in order of offset (equal offsets in the order they were placed). */
interface OffsetOrder {
  items: Int32Array;
  length: number;
}

/**
 * The buffers placed so far, listed in order of offset in time buckets at several levels: at each level,
 * a buffer is in every bucket its live interval touches. A buffer about to be placed looks at one bucket:
 * that of the finest level whose one bucket holds its whole interval. Plan searches place thousands of
 * buffers thousands of times; scanning every placed buffer for each, most of them live at other times,
 * was most of a plan's time. The few whose interval no bucket holds gather the placed buffers that
 * overlap it and sort them, rather than every insert shifting a list of all placed buffers (that list's
 * upkeep was two thirds of placement's work for a hundred or so queries a plan).
 */
class PlacedBuffers {
  readonly start: Int32Array;
  readonly end: Int32Array;
  readonly offset: Float64Array;
  /** Offset plus aligned size. */
  readonly top: Float64Array;
  private count = 0;
  /** levels[l][b]: the buffers live somewhere in positions [b, b + 1) * bucketSize(l). */
  private readonly levels: OffsetOrder[][] = [];
  /** Where a query no bucket answers gathers its buffers. */
  private readonly gathered: OffsetOrder;

  constructor(capacity: number, lastPosition: number) {
    this.start = new Int32Array(capacity);
    this.end = new Int32Array(capacity);
    this.offset = new Float64Array(capacity);
    this.top = new Float64Array(capacity);
    this.gathered = { items: new Int32Array(capacity), length: 0 };
    for (let size = FINEST_BUCKET; size <= lastPosition; size *= LEVEL_FACTOR)
      this.levels.push(Array.from({ length: Math.floor(lastPosition / size) + 1 }, () => ({ items: new Int32Array(8), length: 0 })));
  }

  /** Placed buffers, in order of offset, among which are all those live somewhere in [start, end]. */
  candidates(start: number, end: number): OffsetOrder {
    for (let l = 0, size = FINEST_BUCKET; l < this.levels.length; l++, size *= LEVEL_FACTOR) {
      const bucket = Math.floor(start / size);
      if (bucket === Math.floor(end / size)) return this.levels[l][bucket];
    }
    const found = this.gathered;
    found.length = 0;
    for (let j = 0; j < this.count; j++) if (this.start[j] <= end && start <= this.end[j]) found.items[found.length++] = j;
    found.items.subarray(0, found.length).sort((a, b) => this.offset[a] - this.offset[b] || a - b);
    return found;
  }

  add(start: number, end: number, offset: number, size: number): void {
    const j = this.count++;
    this.start[j] = start;
    this.end[j] = end;
    this.offset[j] = offset;
    this.top[j] = offset + size;
    for (let l = 0, size = FINEST_BUCKET; l < this.levels.length; l++, size *= LEVEL_FACTOR)
      for (let b = Math.floor(start / size); b <= Math.floor(end / size); b++) this.insert(this.levels[l][b], j);
  }

  /** Inserts j into a list kept in order of offset, after those of equal offset. */
  private insert(list: OffsetOrder, j: number): void {
    const x = this.offset[j];
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.offset[list.items[mid]] <= x) lo = mid + 1;
      else hi = mid;
    }
    if (list.length === list.items.length) {
      const grown = new Int32Array(2 * list.length);
      grown.set(list.items);
      list.items = grown;
    }
    list.items.copyWithin(lo + 1, lo, list.length);
    list.items[lo] = j;
    list.length++;
  }
}
