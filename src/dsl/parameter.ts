// A trainable parameter: a shape and an initialiser. Its name comes from where it sits in the module
// tree (PyTorch state_dict style), assigned when the model is traced.
import type { InitSpec, Shape, SourceLoc } from "../../ir/types.ts";
import { Tensor } from "./tensor.ts";
import { currentTrace, callerLoc, traceErrorHere } from "./trace.ts";

/**
 * How tensor parallelism (--tp) cuts a parameter across ranks, set by the layer that owns it
 * (ir/passes/shard.ts reads it). `column`: the output features (axis 0 of a [out, in] weight, and the
 * bias) are cut, in `groups` equal blocks cut separately (q, k and v of a fused projection); `row`:
 * the input features (axis 1); `vocab`: the rows of an embedding table. Without a hint a parameter is
 * replicated on every rank.
 */
export interface ParallelHint {
  style: "column" | "row" | "vocab";
  groups: number;
}

export class Parameter {
  /** The model line that created it (through a module constructor), for plan reports. */
  readonly loc: SourceLoc | undefined = callerLoc();
  constructor(
    readonly shape: Shape,
    readonly init: InitSpec,
    readonly parallel?: ParallelHint,
  ) {
    if (shape.some((d) => !Number.isInteger(d) || d <= 0))
      throw traceErrorHere(`parameter shape [${shape.join(",")}] must have positive integer dimensions`);
  }

  /** The parameter as a tensor of the graph being traced. */
  get t(): Tensor {
    const v = currentTrace().params.get(this);
    if (!v) throw traceErrorHere("this parameter is not reachable from the model's module tree, so it has no name");
    return new Tensor(v);
  }
}

/**
 * A buffer (PyTorch's register_buffer): a tensor the module owns, named, stored and saved in checkpoints
 * as a parameter is, but never trained. It gets no gradient and no optimizer state, and the loss need
 * not depend on it. Its values come from `init` (or from a checkpoint); forward reads it with `.t`.
 */
export class ModuleBuffer extends Parameter {
  constructor(shape: Shape, init: InitSpec) {
    super(shape, init);
  }
}

/** A buffer of `shape` filled by `init` (init.zeros(), init.ones(), init.normal(std)). */
export function buffer(shape: Shape, init: InitSpec): ModuleBuffer {
  return new ModuleBuffer(shape, init);
}

export const init = {
  normal: (std: number): InitSpec => ({ kind: "normal", std }),
  zeros: (): InitSpec => ({ kind: "zeros" }),
  ones: (): InitSpec => ({ kind: "ones" }),
};
