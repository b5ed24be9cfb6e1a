// Appends the optimizer: AdamW on every parameter but the buffers, with two persistent moments, and, when gradient
// clipping is on, one global gradient norm that scales every update (as torch clip_grad_norm_).
// Under ZeRO (--zero 1) the moments are sharded over the data-parallel ranks by chunk, as Gemini and
// DeepSpeed do: each rank holds the moments of its contiguous shard of each chunk only, updates that
// shard of the chunk's parameters (zero_adamw), and a zero_gather then gives every rank the whole
// updated chunk. The gradients are whole on every rank (averaged before), so the norm is unchanged.
import { SettingError } from "../../base/errors.ts";
import { GraphBuilder } from "../builder.ts";
import { type Graph, type Value, trainedParams } from "../types.ts";
import { type ZeroSharding, shardElements } from "./chunks.ts";

export interface OptimizerOptions {
  /** Compute the global gradient norm (needed for clipping and reported in metrics). */
  clip: boolean;
  /** Shard the moments over the data-parallel ranks in these chunks (ZeRO stage 1). */
  zero?: ZeroSharding;
}

export function adamwPass(g: Graph, opts: OptimizerOptions): Graph {
  const b = GraphBuilder.extend(g);
  b.phase = "optimizer";
  const trained = trainedParams(g); // buffers have no gradient and no moments
  const grads = trained.map((p) => {
    const dp = g.grads[p.name];
    if (!dp) throw new Error(`internal: no gradient for ${p.name}; run autodiff first`);
    return dp;
  });
  const norm = opts.clip ? b.value("grad_norm", grads) : undefined;
  if (norm) b.named.grad_norm = norm;
  if (opts.zero) {
    // A chunk's update and gather span all of it from its first parameter; buffers would need holes.
    const buffers = g.params.filter((p) => p.buffer === true).map((p) => p.name);
    if (buffers.length > 0)
      throw new SettingError(
        (name) => `${name("zero")} 1 does not shard the moments of a model with buffers yet (${buffers.join(", ")}): use ${name("zero")} 0`,
      );
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

/** One chunk at a time: this rank's shard of the update, then every rank's shards to every rank. */
function zeroUpdates(b: GraphBuilder, g: Graph, zero: ZeroSharding, norm: Value | undefined): void {
  const byName = new Map(g.params.map((p) => [p.name, p]));
  for (const chunk of zero.chunks.chunks) {
    const params = chunk.params.map((name) => byName.get(name)!);
    const shard = shardElements(chunk, zero.ranks);
    const loc = params[0].loc;
    const m = b.value("opt_state", [], { name: `opt.m.chunk${chunk.index}`, shape: [shard] }, loc);
    const v = b.value("opt_state", [], { name: `opt.v.chunk${chunk.index}`, shape: [shard] }, loc);
    const inputs = [m, v, ...(norm ? [norm] : []), ...params.map((p) => p.value), ...params.map((p) => g.grads[p.name])];
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
      },
      loc,
    );
    b.add(
      "zero_gather",
      params.map((p) => p.value),
      { chunk: chunk.index, shard, ranks: zero.ranks },
      loc,
    );
  }
}
