// Llama (Touvron et al., 2023, "LLaMA" and "Llama 2"; Meta, 2024, "The Llama 3 Herd of Models"), as
// Meta's reference model.py defines it:
//   - pre-norm blocks, h = x + attention(attention_norm(x)), out = h + feed_forward(ffn_norm(h)), and a
//     final norm before the LM head; every norm is RMSNorm (x / sqrt(mean(x^2) + eps) * weight, eps
//     `norm_eps`, 1e-5 for Llama 2 and 3);
//   - grouped-query attention: `heads` query heads of width dim / heads, `kv_heads` key/value heads
//     (kv_heads = heads is plain multi-head attention, Llama 2 7B; 8 for Llama 3);
//   - rotary position embeddings on q and k with base `rope_theta` (10000 for Llama 2, 500000 for
//     Llama 3), no learned positions;
//   - a SwiGLU feed-forward network, w2(silu(w1 x) * w3 x), of width `hidden` (Meta derives it from dim:
//     8 dim / 3, times ffn_dim_multiplier, rounded up to multiple_of: 11008 for Llama 2 7B, 14336 for
//     Llama 3 8B);
//   - no biases anywhere, and an untied output layer (its own [vocab, dim] weight).
// Parameter names are the keys of Meta's checkpoints (consolidated.*.pth): tok_embeddings, layers.N.
// {attention.{wq,wk,wv,wo}, feed_forward.{w1,w2,w3}, attention_norm, ffn_norm}, norm, output. One
// difference in layout: Meta's rotary embedding turns adjacent pairs (x_2i, x_2i+1) and ours pairs x_i
// with x_{i+D/2} (rotate-half, as Hugging Face's Llama), so a Meta checkpoint's wq and wk rows need the
// permutation that Hugging Face's convert_llama_weights_to_hf.py applies; every other weight loads as is.
// Meta's code is for inference and sets no initialisation: ours is Hugging Face's (N(0, 0.02) for every
// linear layer and the embedding, RMSNorm weights 1).
// Under tensor parallelism (--tp N, Megatron-LM style; ir/passes/shard.ts reads the `parallel` hints):
//   - wq is column-parallel (each rank computes its heads' queries), wo row-parallel;
//   - wk and wv are cut by key/value heads, so N must divide kv_heads; a single K/V head (kv_heads = 1)
//     is replicated instead, its gradient summed over the ranks;
//   - w1 and w3 are column-parallel, w2 row-parallel;
//   - the embedding and the output layer are vocabulary-parallel, and so is the loss;
//   - the RMSNorms stay whole (replicated), and RoPE acts on each rank's heads.
//
// The family (`stow capacity`) grows in depth at Llama 3 8B's width (d 4096, 32 heads, 8 KV heads, FFN
// 14336, 128k vocabulary): about 218M parameters a layer.
import {
  Module, ModuleList, Linear, Embedding, RMSNorm, Tensor,
  causalAttention, checkpoint, defineModel, require, rotaryEmbedding,
} from "stowage";

export interface LlamaConfig {
  vocab: number; // vocabulary size
  seq: number; // context length
  layers: number;
  dim: number; // model width d
  heads: number; // query heads, each of width dim / heads
  kv_heads: number; // key/value heads (grouped-query attention); equal to heads for plain multi-head
  hidden: number; // the SwiGLU feed-forward width
  rope_theta: number; // rotary embeddings' base
  norm_eps: number; // RMSNorm epsilon
  [key: string]: number;
}

/** A bias-free projection with Hugging Face's Llama initialisation, cut as `parallel` says under --tp. */
function dense(inFeatures: number, outFeatures: number, parallel?: "column" | "row"): Linear {
  return new Linear(inFeatures, outFeatures, { bias: false, std: 0.02, parallel });
}

class Attention extends Module {
  readonly wq: Linear;
  readonly wk: Linear;
  readonly wv: Linear;
  readonly wo: Linear;
  constructor(readonly cfg: LlamaConfig) {
    super();
    const headDim = cfg.dim / cfg.heads;
    // Several K/V heads are cut by heads like the queries; one is replicated on every rank.
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
    // K and V keep kv_heads heads: query head h reads K/V head h / (heads / kv_heads), never repeated in memory.
    const y = causalAttention(q, k, v);
    return this.wo.forward(y.transpose(1, 2).reshape(B, T, C));
  }
}

class FeedForward extends Module {
  readonly w1: Linear; // gate
  readonly w2: Linear; // down
  readonly w3: Linear; // up
  constructor(cfg: LlamaConfig) {
    super();
    this.w1 = dense(cfg.dim, cfg.hidden, "column");
    this.w2 = dense(cfg.hidden, cfg.dim, "row");
    this.w3 = dense(cfg.dim, cfg.hidden, "column");
  }
  forward(x: Tensor): Tensor {
    return this.w2.forward(this.w1.forward(x).silu().mul(this.w3.forward(x)));
  }
}

class TransformerBlock extends Module {
  readonly attention: Attention;
  readonly feed_forward: FeedForward;
  readonly attention_norm: RMSNorm;
  readonly ffn_norm: RMSNorm;
  constructor(cfg: LlamaConfig) {
    super();
    this.attention = new Attention(cfg);
    this.feed_forward = new FeedForward(cfg);
    this.attention_norm = new RMSNorm(cfg.dim, cfg.norm_eps);
    this.ffn_norm = new RMSNorm(cfg.dim, cfg.norm_eps);
  }
  forward(x: Tensor): Tensor {
    const h = x.add(this.attention.forward(this.attention_norm.forward(x)));
    return h.add(this.feed_forward.forward(this.ffn_norm.forward(h)));
  }
}

class Llama extends Module {
  readonly tok_embeddings: Embedding;
  readonly layers: ModuleList<TransformerBlock>;
  readonly norm: RMSNorm;
  readonly output: Linear;
  constructor(readonly cfg: LlamaConfig) {
    super();
    require(cfg.dim % cfg.heads === 0, `dim (${cfg.dim}) must be divisible by heads (${cfg.heads})`);
    require((cfg.dim / cfg.heads) % 2 === 0, `the head width dim / heads (${cfg.dim / cfg.heads}) must be even for rotary embeddings`);
    require(cfg.kv_heads >= 1 && cfg.heads % cfg.kv_heads === 0, `kv_heads (${cfg.kv_heads}) must divide heads (${cfg.heads})`);
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

export default defineModel<LlamaConfig>({
  defaultPreset: "small",
  presets: {
    // For tests: two layers, 4 query heads sharing 2 K/V heads, on UTF-8 bytes.
    tiny: { vocab: 256, seq: 64, layers: 2, dim: 64, heads: 4, kv_heads: 2, hidden: 192, rope_theta: 10000, norm_eps: 1e-5 },
    // Trains on this machine in minutes, on UTF-8 bytes (a vocabulary under GPT-2's reads bytes).
    small: { vocab: 256, seq: 128, layers: 4, dim: 256, heads: 8, kv_heads: 2, hidden: 768, rope_theta: 10000, norm_eps: 1e-5 },
    // Meta's published shapes, for planning (`stow plan`, `stow capacity`). Llama 2 7B: multi-head attention.
    "7B": { vocab: 32000, seq: 4096, layers: 32, dim: 4096, heads: 32, kv_heads: 32, hidden: 11008, rope_theta: 10000, norm_eps: 1e-5 },
    // Llama 3 8B and 70B: grouped-query attention with 8 K/V heads, a 128k vocabulary.
    "8B": { vocab: 128256, seq: 8192, layers: 32, dim: 4096, heads: 32, kv_heads: 8, hidden: 14336, rope_theta: 500000, norm_eps: 1e-5 },
    "70B": { vocab: 128256, seq: 8192, layers: 80, dim: 8192, heads: 64, kv_heads: 8, hidden: 28672, rope_theta: 500000, norm_eps: 1e-5 },
  },
  scale: { field: "layers", preset: "8B" },
  build: (cfg) => new Llama(cfg),
});
