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
    const { blocks, sizes, blockCount } = placed.candidates(buf.start, buf.end);
    scan: for (let b = 0; b < blockCount; b++) {
      const block = blocks[b];
      for (let i = 0; i < sizes[b]; i++) {
        const j = block[i];
        if (placed.start[j] > buf.end || buf.start > placed.end[j]) continue;
        const gap = placed.offset[j] - cursor;
        if (gap >= size && gap < bestGap) {
          best = cursor;
          bestGap = gap;
          if (gap === size) break scan; // a gap that fits exactly: no later gap can be smaller and still fit
        }
        if (placed.top[j] > cursor) cursor = placed.top[j];
      }
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

/**
 * The buffers placed so far, listed in order of offset (equal offsets in the order they were placed) in
 * time buckets at several levels: at each level, a buffer is in every bucket its live interval touches.
 * A buffer about to be placed looks at one bucket: that of the finest level whose one bucket holds its
 * whole interval (or at all placed buffers, when none does). Plan searches place thousands of buffers
 * thousands of times; scanning every placed buffer for each, most of them live at other times, was most
 * of a plan's time.
 */
class PlacedBuffers {
  readonly start: Int32Array;
  readonly end: Int32Array;
  readonly offset: Float64Array;
  /** Offset plus aligned size. */
  readonly top: Float64Array;
  private count = 0;
  private readonly all: OffsetOrder;
  /** levels[l][b]: the buffers live somewhere in positions [b, b + 1) * bucketSize(l). */
  private readonly levels: OffsetOrder[][] = [];

  constructor(capacity: number, lastPosition: number) {
    this.start = new Int32Array(capacity);
    this.end = new Int32Array(capacity);
    this.offset = new Float64Array(capacity);
    this.top = new Float64Array(capacity);
    this.all = new OffsetOrder(this.offset);
    for (let size = FINEST_BUCKET; size <= lastPosition; size *= LEVEL_FACTOR)
      this.levels.push(Array.from({ length: Math.floor(lastPosition / size) + 1 }, () => new OffsetOrder(this.offset)));
  }

  /** Placed buffers, in order of offset, among which are all those live somewhere in [start, end]. */
  candidates(start: number, end: number): OffsetOrder {
    for (let l = 0, size = FINEST_BUCKET; l < this.levels.length; l++, size *= LEVEL_FACTOR) {
      const bucket = Math.floor(start / size);
      if (bucket === Math.floor(end / size)) return this.levels[l][bucket];
    }
    return this.all;
  }

  add(start: number, end: number, offset: number, size: number): void {
    const j = this.count++;
    this.start[j] = start;
    this.end[j] = end;
    this.offset[j] = offset;
    this.top[j] = offset + size;
    this.all.insert(j);
    for (let l = 0, size = FINEST_BUCKET; l < this.levels.length; l++, size *= LEVEL_FACTOR)
      for (let b = Math.floor(start / size); b <= Math.floor(end / size); b++) this.levels[l][b].insert(j);
  }
}

/** Items in one block of an OffsetOrder at most: an insert shifts at most this many. */
const BLOCK = 256;

/**
 * Indices of placed buffers in order of offset, equal offsets in the order they were inserted, held in
 * consecutive blocks of at most BLOCK items (a block that fills splits in two): an insert shifts one
 * block, not the whole list. A list of all placed buffers, kept in one array, moved millions of items a
 * plan.
 */
class OffsetOrder {
  blocks: Int32Array[] = [new Int32Array(BLOCK)];
  sizes: number[] = [0];
  blockCount = 1;

  constructor(private readonly offset: Float64Array) {}

  /** Inserts j after every item whose offset is at most its own. */
  insert(j: number): void {
    const x = this.offset[j];
    // The first block whose last item lies above x (else the last block): every earlier item is at most x.
    let b = 0;
    while (b < this.blockCount - 1 && this.offset[this.blocks[b][this.sizes[b] - 1]] <= x) b++;
    let block = this.blocks[b];
    let size = this.sizes[b];
    let lo = 0;
    let hi = size;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.offset[block[mid]] <= x) lo = mid + 1;
      else hi = mid;
    }
    if (size === BLOCK) {
      // Split: the upper half goes to a new block after this one.
      const upper = new Int32Array(BLOCK);
      upper.set(block.subarray(BLOCK / 2));
      this.blocks.splice(b + 1, 0, upper);
      this.sizes.splice(b + 1, 0, BLOCK / 2);
      this.blockCount++;
      this.sizes[b] = size = BLOCK / 2;
      if (lo > size) {
        [b, lo] = [b + 1, lo - size];
        block = upper;
        size = BLOCK / 2;
      }
    }
    block.copyWithin(lo + 1, lo, size);
    block[lo] = j;
    this.sizes[b] = size + 1;
  }
}
