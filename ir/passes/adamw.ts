// Appends the optimizer: AdamW on every parameter but the buffers, with two persistent moments, and, when gradient
// clipping is on, one global gradient norm that scales every update (as torch clip_grad_norm_).
// Under ZeRO (--zero 1) the moments are sharded over the data-parallel ranks by chunk, as Gemini and
// DeepSpeed do: each rank holds the moments of its contiguous shard of each chunk only, updates that
// shard of the chunk's parameters (zero_adamw), and a zero_gather then gives every rank the whole
// updated chunk. The gradients are whole on every rank (averaged before), so the norm is unchanged.
import { SettingError } from "../../base/errors.ts";
import { GraphBuilder } from "../builder.ts";
import { type Graph, type Value, numel, trainedParams } from "../types.ts";
import { type Chunk, type ZeroSharding, shardElements, shardGradKey } from "./chunks.ts";

export interface OptimizerOptions {
  /** Compute the global gradient norm (needed for clipping and reported in metrics). */
  clip: boolean;
  /** Shard the moments over the data-parallel ranks in these chunks (ZeRO stage 1). */
  zero?: ZeroSharding;
}

export function adamwPass(g: Graph, opts: OptimizerOptions): Graph {
  const b = GraphBuilder.extend(g);
  b.phase = "optimizer";
  if (opts.zero) refuseBuffersUnderZero(g, opts.zero);
  if (opts.zero && opts.zero.stage >= 2) {
    zeroUpdates(b, g, opts.zero, opts.clip ? shardedNorm(b, g, opts.zero) : undefined);
    return b.build();
  }
  const trained = trainedParams(g); // buffers have no gradient and no moments
  const grads = trained.map((p) => {
    const dp = g.grads[p.name];
    if (!dp) throw new Error(`internal: no gradient for ${p.name}; run autodiff first`);
    return dp;
  });
  const norm = opts.clip ? b.value("grad_norm", grads) : undefined;
  if (norm) b.named.grad_norm = norm;
  if (opts.zero) {
    zeroUpdates(b, g, opts.zero, norm);
    return b.build();
  }
  trained.forEach((p, i) => {
    const m = b.value("opt_state", [], { name: `opt.m.${p.name}`, shape: p.shape }, p.loc);
    const v = b.value("opt_state", [], { name: `opt.v.${p.name}`, shape: p.shape }, p.loc);
    const inputs = norm ? [p.value, grads[i], m, v, norm] : [p.value, grads[i], m, v];
    b.add("adamw", inputs, { decay: p.decay }, p.loc);
  });
  return b.build();
}

/** A chunk's ZeRO update, gather and gradient shards span all of it from its first parameter; buffers would need holes. */
export function refuseBuffersUnderZero(g: Graph, zero: ZeroSharding): void {
  const buffers = g.params.filter((p) => p.buffer === true).map((p) => p.name);
  if (buffers.length > 0)
    throw new SettingError(
      (name) =>
        `${name("zero")} ${zero.stage} does not shard the model data of a model with buffers yet (${buffers.join(", ")}): use ${name("zero")} 0`,
    );
}

/**
 * One chunk at a time: this rank's shard of the update, then every rank's shards to every rank. At
 * ZeRO 3 the update writes the rank's shard of the parameters (gather_params.ts), and no rank holds the
 * whole chunk until its next use gathers it.
 */
function zeroUpdates(b: GraphBuilder, g: Graph, zero: ZeroSharding, norm: Value | undefined): void {
  const byName = new Map(g.params.map((p) => [p.name, p]));
  const paramShards = new Map(g.nodes.filter((n) => n.op === "zero_param_shard").map((n) => [n.attrs.chunk, n.outputs[0]]));
  for (const chunk of zero.chunks.chunks) {
    const params = chunk.params.map((name) => byName.get(name)!);
    const shard = shardElements(chunk, zero.ranks);
    const loc = params[0].loc;
    const m = b.value("opt_state", [], { name: `opt.m.chunk${chunk.index}`, shape: [shard] }, loc);
    const v = b.value("opt_state", [], { name: `opt.v.chunk${chunk.index}`, shape: [shard] }, loc);
    // ZeRO 2: this rank's shard of the chunk's gradient; ZeRO 1: every parameter's whole gradient.
    const shardGrad = zero.stage >= 2 ? g.grads[shardGradKey(chunk.index)] : undefined;
    const grads = shardGrad ? [shardGrad] : params.map((p) => g.grads[p.name]);
    const paramShard = zero.stage === 3 ? paramShards.get(chunk.index) : undefined;
    if (zero.stage === 3 && !paramShard) throw new Error(`internal: no parameter shard of chunk ${chunk.index}; run gatherParams first`);
    const inputs = [m, v, ...(norm ? [norm] : []), ...(paramShard ? [paramShard] : params.map((p) => p.value)), ...grads];
    b.add(
      "zero_adamw",
      inputs,
      {
        chunk: chunk.index,
        count: params.length,
        shard,
        offsets: params.map((p) => chunk.offsets.get(p.name)! / 4),
        decay: params.map((p) => (p.decay ? 1 : 0)),
        clip: norm !== undefined,
        ...(shardGrad && { gradShard: true }),
        ...(paramShard && { paramShard: true, sizes: params.map((p) => numel(p.shape)) }),
      },
      loc,
    );
    if (paramShard) continue;
    b.add(
      "zero_gather",
      params.map((p) => p.value),
      { chunk: chunk.index, shard, ranks: zero.ranks },
      loc,
    );
  }
}

/**
 * ZeRO 2: the global gradient norm from the shards, which together hold the whole averaged gradient
 * once: each rank's sum of squares, summed over the data-parallel ranks. Under --tp a chunk holds
 * tensor-parallel parts only or whole parameters only (chunks.ts, partsApart): the parts' squares are
 * summed over the tensor-parallel ranks too, and the whole parameters', the same on every one, once.
 */
function shardedNorm(b: GraphBuilder, g: Graph, zero: ZeroSharding): Value {
  const byName = new Map(g.params.map((p) => [p.name, p]));
  const isPart = (chunk: Chunk) => {
    const parts = chunk.params.filter((name) => byName.get(name)!.shard !== undefined).length;
    if (parts > 0 && parts < chunk.params.length)
      throw new Error(
        `internal: ZeRO chunk ${chunk.index} mixes tensor-parallel parts and whole parameters; lay chunks out with partsApart`,
      );
    return parts > 0;
  };
  const loc = g.grads[shardGradKey(0)].producer.loc;
  const squares = (chunks: Chunk[]) => {
    const mine = b.value(
      "sum_squares",
      chunks.map((c) => g.grads[shardGradKey(c.index)]),
      {},
      loc,
    );
    return b.value("all_reduce", [mine], { reduce: "sum", group: "dp" }, loc);
  };
  const parts = zero.chunks.chunks.filter(isPart);
  const whole = zero.chunks.chunks.filter((c) => !isPart(c));
  const sums = [
    ...(parts.length > 0 ? [b.value("all_reduce", [squares(parts)], { reduce: "sum" }, loc)] : []),
    ...(whole.length > 0 ? [squares(whole)] : []),
  ];
  const norm = b.value("norm_from_squares", sums, {}, loc);
  b.named.grad_norm = norm;
  return norm;
}
