// PaLM (Chowdhery et al., 2022, "PaLM: Scaling Language Modeling with Pathways", section 2):
//   - parallel blocks: y = x + attn(ln(x)) + mlp(ln(x)), one LayerNorm feeding both branches;
//   - SwiGLU MLP, down(silu(x W_gate) * (x W_up)), hidden width 4 * dim (the paper's d_ff = 4d,
//     so the MLP has 3 * 4 d^2 weights);
//   - multi-query attention: `heads` query heads of width dim / heads share one key and one value
//     head (`kv_heads` = 1; a larger divisor of heads gives grouped-query attention);
//   - rotary position embeddings on q and k (rotate-half pairing, base 10000), no learned positions;
//   - no biases, in the dense layers or in the LayerNorms;
//   - input and output embeddings shared, the embedding drawn from N(0, 1) and the pre-softmax logits
//     scaled by 1 / sqrt(dim). Stored as E' = E / sqrt(dim), drawn from N(0, 1 / dim): the input is
//     E' sqrt(dim) = E and the logits x E'^T = x E^T / sqrt(dim), the paper's model exactly. Why: the paper
//     trains with Adafactor, whose steps scale with each parameter's RMS, so every parameter moves by the
//     same fraction of its size. AdamW moves every element by the same amount, so E (RMS 1) moved sqrt(dim)
//     times less, for its size, than the kernels (RMS 1/sqrt(dim)): the embedding barely moved while the
//     blocks did, and the default run learned slower than GPT-2's. E' has the kernels' RMS, so AdamW moves
//     it as much as them, for its size, as Adafactor would;
//   - other kernels drawn from N(0, 1 / fan_in) ("fan-in variance scaling").
// Deviations from the paper, for simplicity: no z-loss (the auxiliary log^2 Z term), LayerNorm eps
// 1e-5 (`norm_eps`), and plain AdamW (Stowage's optimizer) rather than Adafactor.
// At init the shared N(0, 1) embedding is a large part of the residual stream, so the model favours its
// input token (a logit near sqrt(dim) over the stream's spread): on text with runs of one token (GPT-2 BPE
// writes indentation a space token at a time) the first loss is below the uniform ln(vocab). That is the
// paper's init at work (test/system/palm_init.test.ts checks it against the paper), not a departure from it.
// Under tensor parallelism (--tp N, Megatron-LM style; ir/passes/shard.ts reads the `parallel` hints):
//   - q_proj is column-parallel (each rank computes its heads' queries), out_proj row-parallel;
//   - the single K/V head (kv_heads = 1) is replicated: k_proj and v_proj have no hint, every rank
//     computes the whole K and V, and their gradients (each rank's from its own query heads) are summed
//     over the ranks. With kv_heads > 1 the K/V projections are cut by heads instead, each rank taking
//     kv_heads / N of them (so N must divide kv_heads);
//   - the SwiGLU gate and up projections are column-parallel, down row-parallel;
//   - the shared embedding is vocabulary-parallel, and so are the LM head and the loss;
//   - the LayerNorms stay whole (replicated), and RoPE acts on each rank's heads.
//
// The family (`stow capacity`) grows in depth at the 8B preset's width (d 4096, 16 heads, one KV head,
// 256k vocabulary, context 2048): about 218M parameters a layer, as the paper's 8B, 62B and 540B models
// grow both depth and width.
import {
  Module, ModuleList, Linear, Embedding, LayerNorm, Tensor,
  causalAttention, checkpoint, defineModel, require, rotaryEmbedding,
} from "stowage";

export interface PaLMConfig {
  vocab: number; // vocabulary size
  seq: number; // context length
  layers: number;
  dim: number; // model width d
  heads: number; // query heads, each of width dim / heads
  kv_heads: number; // key/value heads: 1 is multi-query attention
  rope_base: number; // rotary embeddings' base (the paper's 10000)
  norm_eps: number; // LayerNorm epsilon
  [key: string]: number;
}

/** A bias-free projection with PaLM's fan-in initialisation, cut as `parallel` says under --tp. */
function dense(inFeatures: number, outFeatures: number, parallel?: "column" | "row"): Linear {
  return new Linear(inFeatures, outFeatures, { bias: false, std: 1 / Math.sqrt(inFeatures), parallel });
}

class MultiQueryAttention extends Module {
  readonly q_proj: Linear;
  readonly k_proj: Linear;
  readonly v_proj: Linear;
  readonly out_proj: Linear;
  constructor(readonly cfg: PaLMConfig) {
    super();
    const headDim = cfg.dim / cfg.heads;
    // One K/V head is replicated on every rank; several are cut by heads like the queries.
    const kv = cfg.kv_heads > 1 ? "column" : undefined;
    this.q_proj = dense(cfg.dim, cfg.dim, "column");
    this.k_proj = dense(cfg.dim, cfg.kv_heads * headDim, kv);
    this.v_proj = dense(cfg.dim, cfg.kv_heads * headDim, kv);
    this.out_proj = dense(cfg.dim, cfg.dim, "row");
  }
  forward(x: Tensor): Tensor {
    const [B, T, C] = x.shape;
    const D = C / this.cfg.heads;
    const heads = (t: Tensor, n: number) => t.reshape(B, T, n, D).transpose(1, 2); // [B, n, T, D]
    const q = rotaryEmbedding(heads(this.q_proj.forward(x), this.cfg.heads), this.cfg.rope_base);
    const k = rotaryEmbedding(heads(this.k_proj.forward(x), this.cfg.kv_heads), this.cfg.rope_base);
    const v = heads(this.v_proj.forward(x), this.cfg.kv_heads);
    // K and V have kv_heads heads; the attention op maps each query head to its KV head.
    const y = causalAttention(q, k, v);
    return this.out_proj.forward(y.transpose(1, 2).reshape(B, T, C));
  }
}

class SwiGLU extends Module {
  readonly gate: Linear;
  readonly up: Linear;
  readonly down: Linear;
  constructor(cfg: PaLMConfig) {
    super();
    this.gate = dense(cfg.dim, 4 * cfg.dim, "column");
    this.up = dense(cfg.dim, 4 * cfg.dim, "column");
    this.down = dense(4 * cfg.dim, cfg.dim, "row");
  }
  forward(x: Tensor): Tensor {
    return this.down.forward(this.gate.forward(x).silu().mul(this.up.forward(x)));
  }
}

class ParallelBlock extends Module {
  readonly ln: LayerNorm;
  readonly attn: MultiQueryAttention;
  readonly mlp: SwiGLU;
  constructor(cfg: PaLMConfig) {
    super();
    this.ln = new LayerNorm(cfg.dim, cfg.norm_eps, { bias: false });
    this.attn = new MultiQueryAttention(cfg);
    this.mlp = new SwiGLU(cfg);
  }
  forward(x: Tensor): Tensor {
    const h = this.ln.forward(x);
    return x.add(this.attn.forward(h)).add(this.mlp.forward(h));
  }
}

class PaLM extends Module {
  readonly wte: Embedding;
  readonly h: ModuleList<ParallelBlock>;
  readonly ln_f: LayerNorm;
  constructor(readonly cfg: PaLMConfig) {
    super();
    require(cfg.dim % cfg.heads === 0, `dim (${cfg.dim}) must be divisible by heads (${cfg.heads})`);
    require((cfg.dim / cfg.heads) % 2 === 0, `the head width dim / heads (${cfg.dim / cfg.heads}) must be even for rotary embeddings`);
    require(cfg.kv_heads >= 1 && cfg.heads % cfg.kv_heads === 0, `kv_heads (${cfg.kv_heads}) must divide heads (${cfg.heads})`);
    // E' of the header: E = E' sqrt(dim) ~ N(0, 1).
    this.wte = new Embedding(cfg.vocab, cfg.dim, { std: 1 / Math.sqrt(cfg.dim), parallel: "vocab" });
    this.h = new ModuleList(Array.from({ length: cfg.layers }, () => new ParallelBlock(cfg)));
    this.ln_f = new LayerNorm(cfg.dim, cfg.norm_eps, { bias: false });
  }
  forward(tokens: Tensor): Tensor {
    const [B, T] = tokens.shape;
    let x = this.wte.forward(tokens).scale(Math.sqrt(this.cfg.dim)); // E'[tokens] sqrt(dim) = E[tokens]
    // Each block is a checkpoint region: --checkpoint blocks keeps only its input for the backward.
    for (const block of this.h.items) x = checkpoint(block, x);
    x = this.ln_f.forward(x);
    // The output embedding is the input one, transposed: logits = x E'ᵀ = x Eᵀ / sqrt(dim).
    return x.reshape(B * T, this.cfg.dim).matmul(this.wte.weight.t, { transposeOther: true }).reshape(B, T, this.cfg.vocab);
  }
}

export default defineModel<PaLMConfig>({
  defaultPreset: "small",
  presets: {
    // Trains on this machine in minutes, on GPT-2 BPE tokens (hence the GPT-2 vocabulary).
    small: { vocab: 50257, seq: 128, layers: 4, dim: 256, heads: 4, kv_heads: 1, rope_base: 10000, norm_eps: 1e-5 },
    // The paper's Table 1, with its 256k SentencePiece vocabulary: for planning (`stow plan`).
    "8B": { vocab: 256000, seq: 2048, layers: 32, dim: 4096, heads: 16, kv_heads: 1, rope_base: 10000, norm_eps: 1e-5 },
    "62B": { vocab: 256000, seq: 2048, layers: 64, dim: 8192, heads: 32, kv_heads: 1, rope_base: 10000, norm_eps: 1e-5 },
  },
  scale: { field: "layers", preset: "8B" },
  build: (cfg) => new PaLM(cfg),
});
