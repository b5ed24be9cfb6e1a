// Data-movement functions of the DSL that take several tensors or PyTorch's argument forms: concat
// and stack, pad, and function forms of the Tensor methods (narrow, broadcastTo, indexSelect, gather).
import { Tensor, axis } from "./tensor.ts";
import { emit, traceErrorHere } from "./trace.ts";

/** The tensors joined along axis `dim` (torch.cat); every other axis must match. */
export function concat(tensors: readonly Tensor[], dim = -1): Tensor {
  if (tensors.length === 0) throw traceErrorHere("concat: no tensors to join");
  if (tensors.length === 1) return tensors[0];
  const rank = tensors[0].rank;
  const d = axis(dim, rank);
  // Along the last axis concat needs no axis attribute (the form the gradient of split makes).
  const attrs = d === rank - 1 ? {} : { axis: d };
  return new Tensor(
    emit(
      "concat",
      tensors.map((t) => t.value),
      attrs,
    )[0],
  );
}

/** torch.cat's name for concat. */
export const cat = concat;

/** The tensors, all of one shape, stacked along a new axis `dim` (torch.stack). */
export function stack(tensors: readonly Tensor[], dim = 0): Tensor {
  if (tensors.length === 0) throw traceErrorHere("stack: no tensors to stack");
  const d = axis(dim, tensors[0].rank + 1);
  const shape = tensors[0].shape;
  const other = tensors.find((t) => t.rank !== shape.length || t.shape.some((s, i) => s !== shape[i]));
  if (other) throw traceErrorHere(`stack: shapes [${shape.join(",")}] and [${other.shape.join(",")}] differ`);
  return concat(
    tensors.map((t) => t.unsqueeze(d)),
    d,
  );
}

/**
 * Constant padding as torch.nn.functional.pad: `pads` holds (before, after) pairs starting from the
 * last axis, [left, right] or [left, right, top, bottom], ...; a negative amount crops.
 */
export function pad(x: Tensor, pads: readonly number[], value = 0): Tensor {
  if (pads.length % 2 !== 0 || pads.length / 2 > x.rank)
    throw traceErrorHere(`pad: ${pads.length} amounts for a tensor of rank ${x.rank} (a before and an after for each of its last axes)`);
  const k = pads.length / 2;
  const before = Array.from({ length: k }, (_, i) => pads[2 * (k - 1 - i)]);
  const after = Array.from({ length: k }, (_, i) => pads[2 * (k - 1 - i) + 1]);
  return new Tensor(emit("pad", [x.value], { before, after, value })[0]);
}

/** x.narrow(dim, start, length). */
export function narrow(x: Tensor, dim: number, start: number, length: number): Tensor {
  return x.narrow(dim, start, length);
}

/** x.broadcastTo(shape). */
export function broadcastTo(x: Tensor, shape: readonly number[]): Tensor {
  return x.broadcastTo(shape);
}

/** x.indexSelect(dim, indices). */
export function indexSelect(x: Tensor, dim: number, indices: Tensor): Tensor {
  return x.indexSelect(dim, indices);
}

/** x.gather(dim, index). */
export function gather(x: Tensor, dim: number, index: Tensor): Tensor {
  return x.gather(dim, index);
}
