// BERT (Devlin et al., 2019, "BERT: Pre-training of Deep Bidirectional Transformers"), encoder-only and
// trained with its masked-LM loss, as Hugging Face's BertForMaskedLM computes it:
//   - embeddings: word + learned position embeddings, then LayerNorm (no token types: one segment);
//   - post-norm blocks: x = LN(x + attention(x)), x = LN(x + W2 gelu(W1 x)), with biases everywhere;
//   - attention is bidirectional: every position sees every other (no causal mask);
//   - the MLM head: dense + gelu + LayerNorm, then the decoder, tied to the word embeddings, plus a bias;
//   - the loss is the cross-entropy of the original tokens at the masked positions, their mean.
// The model declares four inputs per example: `tokens` [seq] (with the masked ones replaced), Hugging
// Face's `attention_mask` [seq] (1 for a real token, 0 for padding), the `positions` [predictions] that
// were masked, and their original tokens, `labels` [predictions]. Like the original BERT code
// (max_predictions_per_seq), each sequence has exactly `predictions` of them, so the loss is a plain
// mean; the hidden states at those positions are gathered before the head, which then runs on
// predictions, not seq, rows.
// Sequences have different lengths and are padded to seq: the attention_mask becomes an additive mask
// [B, 1, 1, seq], -Infinity at the padding keys, which every head and query of the example shares.
// Differences from BERT: GELU is the tanh approximation (the DSL's; BERT's is the erf form), and there
// is no dropout and no next-sentence loss.
// Parameter names are Hugging Face's (bert.encoder.layer.N.attention.self.query, cls.predictions...).
// The data: the loader below makes sequences with structure to learn, each an arithmetic progression
// of tokens (a random start and stride, modulo the vocabulary) of a random length from half of seq (or
// predictions, if more) to seq, padded with token 0, and masks them as BERT does: of `predictions`
// positions of each sequence's real tokens, 80% become [MASK] (the last token id), 10% a random token
// and 10% stay as they were. A batch depends only on the seed and the step.
// Under tensor parallelism (--tp N): Megatron's cuts (query, key and value and the first feed-forward
// layer by columns, the attention output and the second feed-forward layer by rows), and the word
// embeddings by vocabulary rows, which cuts the tied decoder's logits and its bias alike.
import {
  Module, ModuleList, Linear, Embedding, LayerNorm, Parameter, Tensor,
  arange, checkpoint, crossEntropy, defineModel, float32, full, init, int32, require, scaledDotProductAttention,
} from "stowage";
import type { Batch, BatchRequest } from "stowage";

export interface BertConfig {
  vocab: number; // vocabulary size; the last id is [MASK]
  seq: number; // sequence length (rows of the position embedding)
  layers: number;
  dim: number; // hidden size
  heads: number;
  hidden: number; // the feed-forward width (BERT's intermediate_size)
  predictions: number; // masked positions per sequence
  [key: string]: number;
}

const NORM_EPS = 1e-12; // BERT's layer_norm_eps

class SelfAttention extends Module {
  readonly query: Linear;
  readonly key: Linear;
  readonly value: Linear;
  constructor(cfg: BertConfig) {
    super();
    this.query = new Linear(cfg.dim, cfg.dim, { parallel: "column" });
    this.key = new Linear(cfg.dim, cfg.dim, { parallel: "column" });
    this.value = new Linear(cfg.dim, cfg.dim, { parallel: "column" });
  }
}

class AddNorm extends Module {
  readonly dense: Linear;
  readonly LayerNorm: LayerNorm;
  constructor(inFeatures: number, dim: number) {
    super();
    this.dense = new Linear(inFeatures, dim, { parallel: "row" });
    this.LayerNorm = new LayerNorm(dim, NORM_EPS);
  }
  /** LN(residual + dense(x)): BERT's post-norm sublayer output. */
  forward(x: Tensor, residual: Tensor): Tensor {
    return this.LayerNorm.forward(residual.add(this.dense.forward(x)));
  }
}

class Attention extends Module {
  readonly self: SelfAttention;
  readonly output: AddNorm;
  constructor(readonly cfg: BertConfig) {
    super();
    this.self = new SelfAttention(cfg);
    this.output = new AddNorm(cfg.dim, cfg.dim);
  }
  /** x [B, T, C]; padding [B, 1, 1, T], added to the scores. */
  forward(x: Tensor, padding: Tensor): Tensor {
    const [B, T, C] = x.shape;
    const H = this.cfg.heads;
    const heads = (t: Tensor) => t.reshape(B, T, H, C / H).transpose(1, 2); // [B, H, T, D]
    const s = this.self;
    const [q, k, v] = [s.query, s.key, s.value].map((l) => heads(l.forward(x)));
    const y = scaledDotProductAttention(q, k, v, { mask: padding });
    return this.output.forward(y.transpose(1, 2).reshape(B, T, C), x);
  }
}

class Intermediate extends Module {
  readonly dense: Linear;
  constructor(cfg: BertConfig) {
    super();
    this.dense = new Linear(cfg.dim, cfg.hidden, { parallel: "column" });
  }
}

class Layer extends Module {
  readonly attention: Attention;
  readonly intermediate: Intermediate;
  readonly output: AddNorm;
  constructor(cfg: BertConfig) {
    super();
    this.attention = new Attention(cfg);
    this.intermediate = new Intermediate(cfg);
    this.output = new AddNorm(cfg.hidden, cfg.dim);
  }
  forward(x: Tensor, padding: Tensor): Tensor {
    const h = this.attention.forward(x, padding);
    return this.output.forward(this.intermediate.dense.forward(h).gelu(), h);
  }
}

class Embeddings extends Module {
  readonly word_embeddings: Embedding;
  readonly position_embeddings: Embedding;
  readonly LayerNorm: LayerNorm;
  constructor(cfg: BertConfig) {
    super();
    this.word_embeddings = new Embedding(cfg.vocab, cfg.dim, { parallel: "vocab" });
    this.position_embeddings = new Embedding(cfg.seq, cfg.dim);
    this.LayerNorm = new LayerNorm(cfg.dim, NORM_EPS);
  }
  forward(tokens: Tensor): Tensor {
    const [, T] = tokens.shape;
    return this.LayerNorm.forward(this.word_embeddings.forward(tokens).add(this.position_embeddings.forward(arange(T))));
  }
}

class Encoder extends Module {
  readonly layer: ModuleList<Layer>;
  constructor(cfg: BertConfig) {
    super();
    this.layer = new ModuleList(Array.from({ length: cfg.layers }, () => new Layer(cfg)));
  }
}

class BertModel extends Module {
  readonly embeddings: Embeddings;
  readonly encoder: Encoder;
  constructor(cfg: BertConfig) {
    super();
    this.embeddings = new Embeddings(cfg);
    this.encoder = new Encoder(cfg);
  }
  /** tokens [B, T]; attentionMask [B, T], 1 for a real token and 0 for padding. */
  forward(tokens: Tensor, attentionMask: Tensor): Tensor {
    const [B, T] = tokens.shape;
    // Hugging Face's extended attention mask: 0 where a key is a token, -inf where it is padding.
    const padding = full([B, 1, 1, T], 0).maskedFill(attentionMask.eq(0).reshape(B, 1, 1, T), -Infinity);
    let x = this.embeddings.forward(tokens);
    for (const layer of this.encoder.layer.items) x = checkpoint(layer, x, padding);
    return x;
  }
}

class Transform extends Module {
  readonly dense: Linear;
  readonly LayerNorm: LayerNorm;
  constructor(cfg: BertConfig) {
    super();
    this.dense = new Linear(cfg.dim, cfg.dim);
    this.LayerNorm = new LayerNorm(cfg.dim, NORM_EPS);
  }
  forward(x: Tensor): Tensor {
    return this.LayerNorm.forward(this.dense.forward(x).gelu());
  }
}

class Predictions extends Module {
  readonly transform: Transform;
  readonly bias: Parameter; // the decoder's; its weight is the word embeddings
  constructor(cfg: BertConfig) {
    super();
    this.transform = new Transform(cfg);
    this.bias = new Parameter([cfg.vocab], init.zeros(), { style: "vocab", groups: 1 });
  }
}

class Heads extends Module {
  readonly predictions: Predictions;
  constructor(cfg: BertConfig) {
    super();
    this.predictions = new Predictions(cfg);
  }
}

class BertForMaskedLM extends Module {
  readonly bert: BertModel;
  readonly cls: Heads;
  constructor(readonly cfg: BertConfig) {
    super();
    require(cfg.dim % cfg.heads === 0, `dim (${cfg.dim}) must be divisible by heads (${cfg.heads})`);
    require(cfg.predictions <= cfg.seq, `predictions (${cfg.predictions}) must be at most seq (${cfg.seq})`);
    require(cfg.vocab >= 3, `vocab (${cfg.vocab}) must hold [MASK] and two tokens`);
    this.bert = new BertModel(cfg);
    this.cls = new Heads(cfg);
  }
  forward({ tokens, attention_mask, positions, labels }: Record<string, Tensor>): Tensor {
    const hidden = this.bert.forward(tokens, attention_mask); // [B, T, C]
    const [B, , C] = hidden.shape;
    const K = this.cfg.predictions;
    const masked = hidden.gather(1, positions.reshape(B, K, 1).expand(B, K, C)); // [B, K, C]
    const x = this.cls.predictions.transform.forward(masked).reshape(B * K, C);
    const decoder = this.bert.embeddings.word_embeddings.weight.t; // tied, [vocab, C]
    const logits = x.matmul(decoder, { transposeOther: true }).add(this.cls.predictions.bias.t); // [B K, vocab]
    return crossEntropy(logits, labels.reshape(B * K));
  }
}

/** mulberry32, seeded: the loader's only source of randomness. */
function generator(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Arithmetic progressions modulo the vocabulary, of random lengths padded to seq, masked as BERT masks. */
export function maskedProgressions(cfg: BertConfig, { step, batch, seed }: BatchRequest): Batch {
  const { seq: T, predictions: K } = cfg;
  const words = cfg.vocab - 1; // ids 0 .. vocab - 2; vocab - 1 is [MASK]
  const random = generator((seed * 2654435761 + step * 40503) >>> 0);
  const below = (n: number) => Math.floor(random() * n);
  const tokens = new Int32Array(batch * T); // padding: token 0
  const attentionMask = new Float32Array(batch * T);
  const positions = new Int32Array(batch * K);
  const labels = new Int32Array(batch * K);
  const shortest = Math.max(K, Math.ceil(T / 2), 1);
  for (let b = 0; b < batch; b++) {
    const [start, stride, length] = [below(words), 1 + below(3), shortest + below(T - shortest + 1)];
    for (let t = 0; t < length; t++) [tokens[b * T + t], attentionMask[b * T + t]] = [(start + stride * t) % words, 1];
    const order = Array.from({ length }, (_, t) => t); // the first K of a partial Fisher-Yates shuffle
    for (let k = 0; k < K; k++) {
      const j = k + below(length - k);
      [order[k], order[j]] = [order[j], order[k]];
      const at = b * T + order[k];
      positions[b * K + k] = order[k];
      labels[b * K + k] = tokens[at];
      const r = random();
      if (r < 0.8) tokens[at] = words;
      else if (r < 0.9) tokens[at] = below(words);
    }
  }
  return { tokens, attention_mask: attentionMask, positions, labels };
}

export default defineModel<BertConfig>({
  defaultPreset: "tiny",
  presets: {
    tiny: { vocab: 64, seq: 16, layers: 2, dim: 32, heads: 2, hidden: 64, predictions: 3 },
    mini: { vocab: 1024, seq: 128, layers: 4, dim: 256, heads: 4, hidden: 1024, predictions: 20 },
    base: { vocab: 30522, seq: 512, layers: 12, dim: 768, heads: 12, hidden: 3072, predictions: 76 },
  },
  inputs: (cfg) => ({
    tokens: int32([cfg.seq], cfg.vocab),
    attention_mask: float32([cfg.seq]),
    positions: int32([cfg.predictions], cfg.seq),
    labels: int32([cfg.predictions], cfg.vocab - 1),
  }),
  data: maskedProgressions,
  build: (cfg) => new BertForMaskedLM(cfg),
});
