// Where a split axis goes through a reshape, for the shard pass. The dimensions of the two shapes are
// matched into groups of equal product ([B, T, C] -> [B, T, H, D] gives B|B, T|T, C|H,D). An axis
// that is a group of its own on both sides maps straight across, with whatever extent each rank holds
// (a padded vocabulary too). Otherwise the split axis must be the outermost of its group (each rank's
// part is then one contiguous chunk of the group), and the chunk must be a whole part of the group's
// outermost output dimension: C split in [H, D] leaves each rank H / ranks heads.
import type { Shape } from "../types.ts";

/** The split axis of the output and this rank's output shape; `direct` when the axis maps straight across. */
export type ReshapeSplit = { axis: number; shape: number[]; direct: boolean } | { problem: string; dim: number };

export function reshapeSplit(fullIn: Shape, fullOut: Shape, axis: number, localExtent: number, ranks: number): ReshapeSplit {
  for (const group of dimensionGroups(fullIn, fullOut)) {
    const [inStart, inEnd, outStart, outEnd] = group;
    if (axis < inStart || axis >= inEnd) continue;
    if (inEnd - inStart === 1 && outEnd - outStart === 1) {
      const shape = [...fullOut];
      shape[outStart] = localExtent;
      return { axis: outStart, shape, direct: true };
    }
    if (fullIn.slice(inStart, axis).some((d) => d !== 1))
      return { problem: `the split axis ${axis} is not the outermost of the dimensions the reshape merges`, dim: fullIn[axis] };
    const outer = fullOut.slice(outStart, outEnd).findIndex((d) => d !== 1) + outStart;
    if (localExtent * ranks !== fullIn[axis] || fullOut[outer] % ranks !== 0)
      return { problem: `${ranks} ranks do not divide dimension ${outer} (of size ${fullOut[outer]})`, dim: fullOut[outer] };
    const shape = [...fullOut];
    shape[outer] = fullOut[outer] / ranks;
    return { axis: outer, shape, direct: false };
  }
  throw new Error(`internal: axis ${axis} is not in the reshape of [${fullIn.join(",")}]`);
}

/** [inStart, inEnd, outStart, outEnd] of each run of dimensions with equal products on both sides. */
function dimensionGroups(a: Shape, b: Shape): [number, number, number, number][] {
  const groups: [number, number, number, number][] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const [i0, j0] = [i, j];
    let pa = i < a.length ? a[i++] : 1;
    let pb = j < b.length ? b[j++] : 1;
    while (pa !== pb) {
      if (pa < pb && i < a.length) pa *= a[i++];
      else if (j < b.length) pb *= b[j++];
      else throw new Error(`internal: [${a.join(",")}] and [${b.join(",")}] differ in size`);
    }
    groups.push([i0, i, j0, j]);
  }
  return groups;
}
