// Shapes of the data-movement ops along any axis (slice, pad, expand, index_select, gather, concat): how
// each sees its tensors, as the registry's shape rules, the interpreter and the kernel bindings all
// need. The kernels index at most MOVE_RANK axes, so neighbouring axes that move alike are merged first;
// that merge is decided here, once.
import { type Shape, numel } from "./types.ts";

/** The most axes the general movement kernels (pad, expand and its gradient) index. */
export const MOVE_RANK = 6;

/** A tensor seen around one axis: the axes before it (outer), its length D, and those after (inner). */
export interface AroundAxis {
  outer: number;
  D: number;
  inner: number;
}

export function aroundAxis(shape: Shape, dim: number): AroundAxis {
  return { outer: numel(shape.slice(0, dim)), D: shape[dim], inner: numel(shape.slice(dim + 1)) };
}

/** pad's amounts for every axis of a tensor of rank `rank` (0 on the leading axes it leaves alone). */
export function padAmounts(rank: number, before: readonly number[], after: readonly number[]): { before: number[]; after: number[] } {
  const lead = new Array<number>(rank - before.length).fill(0);
  return { before: [...lead, ...before], after: [...lead, ...after] };
}

/** pad as its kernel sees it: the axes outside the span of padded axes merged into one on each side. */
export interface PadLayout {
  inShape: number[];
  before: number[];
  outShape: number[];
}

export function padLayout(shape: Shape, before: readonly number[], after: readonly number[]): PadLayout {
  const all = padAmounts(shape.length, before, after);
  const padded = shape.map((_, d) => all.before[d] !== 0 || all.after[d] !== 0);
  const first = padded.indexOf(true);
  if (first < 0) return { inShape: [numel(shape)], before: [0], outShape: [numel(shape)] };
  const last = padded.lastIndexOf(true);
  const inShape = [numel(shape.slice(0, first)), ...shape.slice(first, last + 1), numel(shape.slice(last + 1))];
  const span = (a: number[]) => [0, ...a.slice(first, last + 1), 0];
  const b = span(all.before);
  const a = span(all.after);
  const outShape = inShape.map((d, k) => d + b[k] + a[k]);
  return { inShape, before: b, outShape };
}

/**
 * expand as its kernels see it: `small` aligned with `big`'s trailing axes (1s in front), axes of 1 in
 * both dropped, and neighbouring axes that are both broadcast or both kept merged. Undefined when small
 * does not broadcast to big (an axis neither equal nor 1).
 */
export function broadcastLayout(small: Shape, big: Shape): { small: number[]; big: number[] } | undefined {
  if (small.length > big.length) return undefined;
  const aligned = [...new Array<number>(big.length - small.length).fill(1), ...small];
  const out = { small: [] as number[], big: [] as number[] };
  let prev: "kept" | "broadcast" | undefined;
  for (let d = 0; d < big.length; d++) {
    if (aligned[d] !== big[d] && aligned[d] !== 1) return undefined;
    if (big[d] === 1) continue;
    const kind = aligned[d] === big[d] ? "kept" : "broadcast";
    if (kind === prev) {
      out.small[out.small.length - 1] *= aligned[d];
      out.big[out.big.length - 1] *= big[d];
    } else {
      out.small.push(aligned[d]);
      out.big.push(big[d]);
    }
    prev = kind;
  }
  if (out.big.length === 0) return { small: [1], big: [1] };
  return out;
}
