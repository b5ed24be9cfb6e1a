// A Mixture-of-Experts decoder in the style of Mixtral (Jiang et al., 2024, "Mixtral of Experts"): Llama
// blocks (see samples/llama.ts: pre-norm RMSNorm, rotary embeddings, grouped-query attention, no biases,
// an untied output layer) whose feed-forward network is a sparse MoE layer:
//   - a router, gate = Linear(dim, experts), scores each token against every expert;
//   - the top `top_k` experts (2 by default) are selected per token, and their weights are the softmax of
//     the selected logits only (Mixtral's order: top-k first, then softmax; unselected experts weigh 0);
//   - each expert is a SwiGLU, w2(silu(w1 x) * w3 x) of width `hidden`, and the layer's output is the
//     weighted sum of the experts' outputs.
// Top-k is written with the DSL's primitives: k rounds of amax, a comparison to find the winner, and a
// where that masks it to -Infinity before the next round. Ties: within a round, among experts whose logits
// are exactly equal, the lowest index wins (each candidate scores E - index, and the highest score wins),
// so exactly top_k experts are chosen per token. (torch.topk documents no tie rule; the PyTorch twin's
// test data has no exact ties.)
// The dispatch is dense: every expert runs on every token and the unselected ones are multiplied by 0.
// That costs experts / top_k times the expert FLOPs and activation memory of a sparse dispatch (which
// would gather each expert's tokens, run it on those alone and scatter the results back): 4x for 8
// experts and k = 2, as Mixtral 8x7B. The results are the same; only the work differs.
// No auxiliary load-balancing loss (Switch Transformer's): the model returns logits and the loss is the
// next-token cross-entropy, so there is no clean way to add a term; it is left out, and with it the
// router's incentive to spread tokens evenly, which matters for a sparse dispatch's capacity, not here.
// Parameter names follow Mistral's reference code: layers.N.feed_forward.gate and
// layers.N.feed_forward.experts.M.{w1,w2,w3}; the rest are Llama's (tok_embeddings, attention.wq, ...).
// Under tensor parallelism (--tp N): attention as in samples/llama.ts; every expert is cut Megatron-style
// (w1 and w3 column-parallel, w2 row-parallel), so each rank holds a slice of every expert; the router
// and the routing stay whole (replicated), every rank computing the same weights.
import {
  Module, ModuleList, Linear, Embedding, RMSNorm, Tensor,
  causalAttention, checkpoint, defineModel, full, concat, require, rotaryEmbedding, softmax,
} from "stowage";

export interface MoeConfig {
  vocab: number; // vocabulary size
  seq: number; // context length
  layers: number;
  dim: number; // model width d
  heads: number; // query heads, each of width dim / heads
  kv_heads: number; // key/value heads (grouped-query attention)
  hidden: number; // each expert's SwiGLU width
  experts: number; // experts per MoE layer
  top_k: number; // experts each token is routed to
  rope_theta: number; // rotary embeddings' base
  norm_eps: number; // RMSNorm epsilon
  [key: string]: number;
}

function dense(inFeatures: number, outFeatures: number, parallel?: "column" | "row"): Linear {
  return new Linear(inFeatures, outFeatures, { bias: false, std: 0.02, parallel });
}

class Attention extends Module {
  readonly wq: Linear;
  readonly wk: Linear;
  readonly wv: Linear;
  readonly wo: Linear;
  constructor(readonly cfg: MoeConfig) {
    super();
    const headDim = cfg.dim / cfg.heads;
    const kv = cfg.kv_heads > 1 ? "column" : undefined;
    this.wq = dense(cfg.dim, cfg.heads * headDim, "column");
    this.wk = dense(cfg.dim, cfg.kv_heads * headDim, kv);
    this.wv = dense(cfg.dim, cfg.kv_heads * headDim, kv);
    this.wo = dense(cfg.heads * headDim, cfg.dim, "row");
  }
  forward(x: Tensor): Tensor {
    const [B, T, C] = x.shape;
    const D = C / this.cfg.heads;
    const heads = (t: Tensor, n: number) => t.reshape(B, T, n, D).transpose(1, 2); // [B, n, T, D]
    const q = rotaryEmbedding(heads(this.wq.forward(x), this.cfg.heads), this.cfg.rope_theta);
    const k = rotaryEmbedding(heads(this.wk.forward(x), this.cfg.kv_heads), this.cfg.rope_theta);
    const v = heads(this.wv.forward(x), this.cfg.kv_heads);
    return this.wo.forward(causalAttention(q, k, v).transpose(1, 2).reshape(B, T, C));
  }
}

class Expert extends Module {
  readonly w1: Linear; // gate
  readonly w2: Linear; // down
  readonly w3: Linear; // up
  constructor(cfg: MoeConfig) {
    super();
    this.w1 = dense(cfg.dim, cfg.hidden, "column");
    this.w2 = dense(cfg.hidden, cfg.dim, "row");
    this.w3 = dense(cfg.dim, cfg.hidden, "column");
  }
  forward(x: Tensor): Tensor {
    return this.w2.forward(this.w1.forward(x).silu().mul(this.w3.forward(x)));
  }
}

/**
 * A 0/1 mask [..., E] of the top `k` entries of `logits` along the last axis, exactly k per row: each
 * round takes the maximum of what is left, the lowest index among equal maxima, and masks it out.
 */
export function topKMask(logits: Tensor, k: number): Tensor {
  const E = logits.shape[logits.rank - 1];
  // E - e for expert e: among tied candidates, the lowest index has the highest priority.
  const priority = concat(Array.from({ length: E }, (_, e) => full([1], E - e)), 0);
  let remaining = logits;
  let selected: Tensor | undefined;
  for (let round = 0; round < k; round++) {
    const candidates = remaining.eq(remaining.amax(-1, true)).mul(priority);
    const winner = candidates.eq(candidates.amax(-1, true));
    selected = selected ? selected.add(winner) : winner;
    remaining = remaining.maskedFill(winner, -Infinity);
  }
  return selected!;
}

class MoeFeedForward extends Module {
  readonly gate: Linear;
  readonly experts: ModuleList<Expert>;
  constructor(readonly cfg: MoeConfig) {
    super();
    this.gate = dense(cfg.dim, cfg.experts); // replicated under --tp
    this.experts = new ModuleList(Array.from({ length: cfg.experts }, () => new Expert(cfg)));
  }
  forward(x: Tensor): Tensor {
    const logits = this.gate.forward(x); // [B, T, E]
    const selected = topKMask(logits, this.cfg.top_k);
    // Softmax over the selected logits alone: the others are -Infinity, so they weigh exactly 0.
    const weights = softmax(logits.maskedFill(selected.eq(0), -Infinity), -1);
    // Dense dispatch: every expert on every token, weighted (0 for the unselected ones).
    let out: Tensor | undefined;
    this.experts.items.forEach((expert, e) => {
      const y = expert.forward(x).mul(weights.narrow(-1, e, 1));
      out = out ? out.add(y) : y;
    });
    return out!;
  }
}

class TransformerBlock extends Module {
  readonly attention: Attention;
  readonly feed_forward: MoeFeedForward;
  readonly attention_norm: RMSNorm;
  readonly ffn_norm: RMSNorm;
  constructor(cfg: MoeConfig) {
    super();
    this.attention = new Attention(cfg);
    this.feed_forward = new MoeFeedForward(cfg);
    this.attention_norm = new RMSNorm(cfg.dim, cfg.norm_eps);
    this.ffn_norm = new RMSNorm(cfg.dim, cfg.norm_eps);
  }
  forward(x: Tensor): Tensor {
    const h = x.add(this.attention.forward(this.attention_norm.forward(x)));
    return h.add(this.feed_forward.forward(this.ffn_norm.forward(h)));
  }
}

class Mixtral extends Module {
  readonly tok_embeddings: Embedding;
  readonly layers: ModuleList<TransformerBlock>;
  readonly norm: RMSNorm;
  readonly output: Linear;
  constructor(readonly cfg: MoeConfig) {
    super();
    require(cfg.dim % cfg.heads === 0, `dim (${cfg.dim}) must be divisible by heads (${cfg.heads})`);
    require((cfg.dim / cfg.heads) % 2 === 0, `the head width dim / heads (${cfg.dim / cfg.heads}) must be even for rotary embeddings`);
    require(cfg.kv_heads >= 1 && cfg.heads % cfg.kv_heads === 0, `kv_heads (${cfg.kv_heads}) must divide heads (${cfg.heads})`);
    require(cfg.experts >= 1, `experts (${cfg.experts}) must be at least 1`);
    require(cfg.top_k >= 1 && cfg.top_k <= cfg.experts, `top_k (${cfg.top_k}) must be between 1 and experts (${cfg.experts})`);
    this.tok_embeddings = new Embedding(cfg.vocab, cfg.dim, { parallel: "vocab" });
    this.layers = new ModuleList(Array.from({ length: cfg.layers }, () => new TransformerBlock(cfg)));
    this.norm = new RMSNorm(cfg.dim, cfg.norm_eps);
    this.output = new Linear(cfg.dim, cfg.vocab, { bias: false, std: 0.02, parallel: "vocab" });
  }
  forward(tokens: Tensor): Tensor {
    let h = this.tok_embeddings.forward(tokens);
    // Each block is a checkpoint region: --checkpoint blocks keeps only its input for the backward.
    for (const layer of this.layers.items) h = checkpoint(layer, h);
    return this.output.forward(this.norm.forward(h));
  }
}

export default defineModel<MoeConfig>({
  defaultPreset: "small",
  presets: {
    // For tests: two layers of 4 experts, top 2, on UTF-8 bytes.
    tiny: { vocab: 256, seq: 64, layers: 2, dim: 64, heads: 4, kv_heads: 2, hidden: 96, experts: 4, top_k: 2, rope_theta: 10000, norm_eps: 1e-5 },
    // Trains on this machine in minutes, on UTF-8 bytes.
    small: { vocab: 256, seq: 128, layers: 4, dim: 256, heads: 8, kv_heads: 2, hidden: 384, experts: 8, top_k: 2, rope_theta: 10000, norm_eps: 1e-5 },
    // Mixtral 8x7B's published shapes, for planning (`stow plan`); dense dispatch runs all 8 experts.
    "8x7B": { vocab: 32000, seq: 4096, layers: 32, dim: 4096, heads: 32, kv_heads: 8, hidden: 14336, experts: 8, top_k: 2, rope_theta: 1e6, norm_eps: 1e-5 },
  },
  scale: { field: "layers", preset: "8x7B" },
  build: (cfg) => new Mixtral(cfg),
});
