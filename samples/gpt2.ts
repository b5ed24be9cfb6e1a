// GPT-2, exactly as nanoGPT defines it: pre-LayerNorm blocks, learned position embeddings, a tanh-GELU
// MLP of width 4C, biases everywhere, LayerNorm eps 1e-5, and the LM head tied to the token embedding.
// Parameter names and layouts are nanoGPT's state_dict keys.
//
// The family (`stow capacity`) grows in depth at the width of GPT-3 6.7B (Brown et al., 2020, table 2.1:
// 32 layers, d_model 4096, 32 heads; here with GPT-2's vocabulary and context 1024): about 201M
// parameters a layer, so the search over layers is fine-grained, and a model of tens of billions of
// parameters is about a hundred layers, few enough to plan in seconds. `--preset NAME` grows another
// preset's layers instead.
import {
  Module, ModuleList, Linear, Embedding, LayerNorm, Tensor,
  arange, causalAttention, checkpoint, defineModel, require,
} from "stowage";

export interface GPTConfig {
  vocab: number; // vocabulary size
  seq: number; // context length (rows of the position embedding)
  layers: number;
  dim: number; // embedding width C
  heads: number;
  [key: string]: number;
}

class CausalSelfAttention extends Module {
  readonly c_attn: Linear;
  readonly c_proj: Linear;
  constructor(readonly cfg: GPTConfig) {
    super();
    // Under --tp, each rank computes the q, k and v of its share of the heads (column-parallel, the
    // three blocks cut separately) and the output projection sums the ranks' parts (row-parallel).
    this.c_attn = new Linear(cfg.dim, 3 * cfg.dim, { parallel: "column", groups: 3 });
    // GPT-2 scales the init of residual projections by 1/sqrt(2 * layers).
    this.c_proj = new Linear(cfg.dim, cfg.dim, { std: 0.02 / Math.sqrt(2 * cfg.layers), parallel: "row" });
  }
  forward(x: Tensor): Tensor {
    const [B, T, C] = x.shape;
    const H = this.cfg.heads;
    const [q, k, v] = this.c_attn.forward(x).split(3);
    const heads = (t: Tensor) => t.reshape(B, T, H, C / H).transpose(1, 2); // [B, H, T, D]
    const y = causalAttention(heads(q), heads(k), heads(v));
    return this.c_proj.forward(y.transpose(1, 2).reshape(B, T, C));
  }
}

class MLP extends Module {
  readonly c_fc: Linear;
  readonly c_proj: Linear;
  constructor(cfg: GPTConfig) {
    super();
    this.c_fc = new Linear(cfg.dim, 4 * cfg.dim, { parallel: "column" });
    this.c_proj = new Linear(4 * cfg.dim, cfg.dim, { std: 0.02 / Math.sqrt(2 * cfg.layers), parallel: "row" });
  }
  forward(x: Tensor): Tensor {
    return this.c_proj.forward(this.c_fc.forward(x).gelu());
  }
}

class Block extends Module {
  readonly ln_1: LayerNorm;
  readonly attn: CausalSelfAttention;
  readonly ln_2: LayerNorm;
  readonly mlp: MLP;
  constructor(cfg: GPTConfig) {
    super();
    this.ln_1 = new LayerNorm(cfg.dim);
    this.attn = new CausalSelfAttention(cfg);
    this.ln_2 = new LayerNorm(cfg.dim);
    this.mlp = new MLP(cfg);
  }
  forward(x: Tensor): Tensor {
    x = x.add(this.attn.forward(this.ln_1.forward(x)));
    return x.add(this.mlp.forward(this.ln_2.forward(x)));
  }
}

class Transformer extends Module {
  readonly wte: Embedding;
  readonly wpe: Embedding;
  readonly h: ModuleList<Block>;
  readonly ln_f: LayerNorm;
  constructor(cfg: GPTConfig) {
    super();
    // Vocabulary-parallel under --tp: the tied LM head and the loss are then vocabulary-parallel too.
    this.wte = new Embedding(cfg.vocab, cfg.dim, { parallel: "vocab" });
    this.wpe = new Embedding(cfg.seq, cfg.dim);
    this.h = new ModuleList(Array.from({ length: cfg.layers }, () => new Block(cfg)));
    this.ln_f = new LayerNorm(cfg.dim);
  }
}

class GPT extends Module {
  readonly transformer: Transformer;
  constructor(readonly cfg: GPTConfig) {
    super();
    require(cfg.dim % cfg.heads === 0, `dim (${cfg.dim}) must be divisible by heads (${cfg.heads})`);
    this.transformer = new Transformer(cfg);
  }
  forward(tokens: Tensor): Tensor {
    const [, T] = tokens.shape;
    const t = this.transformer;
    let x = t.wte.forward(tokens).add(t.wpe.forward(arange(T))); // [B, T, C] + [T, C]
    // Each block is a checkpoint region: --checkpoint blocks keeps only its input for the backward.
    for (const block of t.h.items) x = checkpoint(block, x);
    x = t.ln_f.forward(x);
    // The LM head is the token embedding, transposed: logits = x wteᵀ.
    const [B, , C] = x.shape;
    return x.reshape(B * T, C).matmul(t.wte.weight.t, { transposeOther: true }).reshape(B, T, this.cfg.vocab);
  }
}

export default defineModel<GPTConfig>({
  // The first run's model: `mini` on UTF-8 bytes (a vocabulary under GPT-2's reads bytes,
  // src/data/tokenizer.ts). Without GPT-2's 50257-row embedding and LM head a step costs about a sixth,
  // so the default run sees enough text in about a minute to write recognisable code.
  defaultPreset: "bytes",
  presets: {
    bytes: { vocab: 256, seq: 128, layers: 4, dim: 128, heads: 4 },
    mini: { vocab: 50257, seq: 128, layers: 4, dim: 128, heads: 4 },
    "124M": { vocab: 50257, seq: 1024, layers: 12, dim: 768, heads: 12 },
    "350M": { vocab: 50257, seq: 1024, layers: 24, dim: 1024, heads: 16 },
    "774M": { vocab: 50257, seq: 1024, layers: 36, dim: 1280, heads: 20 },
    "1.5B": { vocab: 50257, seq: 1024, layers: 48, dim: 1600, heads: 25 },
    "6.7B": { vocab: 50257, seq: 1024, layers: 32, dim: 4096, heads: 32 },
    // GPT-3 175B's shape (Brown et al., 2020, table 2.1: 96 layers, d_model 12288, 96 heads, context 2048), 1.8B
    // parameters a layer: `--preset 175B` grows the family at the width of single-GPU disk-tier records.
    "175B": { vocab: 50257, seq: 2048, layers: 96, dim: 12288, heads: 96 },
  },
  scale: { field: "layers", preset: "6.7B" },
  build: (cfg) => new GPT(cfg),
});
