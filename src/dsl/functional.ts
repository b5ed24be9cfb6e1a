// Functional ops of the DSL that are not methods of a tensor: the composites a GPT needs, and attention
// in the torch.nn.functional style.
import { Tensor } from "./tensor.ts";
import { currentTrace, emit, inCheckpointRegion, traceErrorHere } from "./trace.ts";

/** Rows of `table` [V, C] picked by integer `indices` [...] -> [..., C]. */
export function embedding(table: Tensor, indices: Tensor): Tensor {
  return new Tensor(emit("embedding", [table.value, indices.value])[0]);
}

/** Integers 0, 1, ..., n-1 (i32), e.g. positions. */
export function arange(n: number): Tensor {
  return new Tensor(emit("iota", [], { n })[0]);
}

/**
 * LayerNorm over the last axis with weight and bias, PyTorch semantics (biased variance). A bias of
 * `undefined` gives the LayerNorm without bias of PaLM (and of torch.nn.LayerNorm(bias=False)).
 */
export function layerNorm(x: Tensor, weight: Tensor, bias: Tensor | undefined, eps = 1e-5): Tensor {
  const inputs = bias ? [x.value, weight.value, bias.value] : [x.value, weight.value];
  return new Tensor(emit("layernorm", inputs, { eps })[0]);
}

/** A constant f32 tensor of `shape` filled with `value` (torch.full); it gets no gradient. */
export function full(shape: number[], value: number): Tensor {
  return new Tensor(emit("fill", [], { shape, value })[0]);
}

/**
 * RMSNorm over the last axis (Llama; torch.nn.functional.rms_norm):
 * x / sqrt(mean(x^2, -1) + eps) * weight. Built from the elementwise ops and a mean reduction.
 */
export function rmsNorm(x: Tensor, weight: Tensor, eps = 1e-6): Tensor {
  return x.mul(x.square().mean(-1, true).add(eps).rsqrt()).mul(weight);
}

function lastAxisOnly(name: string, x: Tensor, dim: number): void {
  if (dim !== -1 && dim !== x.rank - 1)
    throw traceErrorHere(`${name}: only the last axis is supported (dim -1); transpose axis ${dim} to the end first`);
}

/** Softmax over the last axis (dim -1), numerically stable: exp(x - max) / sum. */
export function softmax(x: Tensor, dim = -1): Tensor {
  lastAxisOnly("softmax", x, dim);
  const e = x.sub(x.amax(-1, true)).exp();
  return e.div(e.sum(-1, true));
}

/** log(softmax(x)) over the last axis (dim -1), stable: (x - max) - log(sum(exp(x - max))). */
export function logSoftmax(x: Tensor, dim = -1): Tensor {
  lastAxisOnly("logSoftmax", x, dim);
  const shifted = x.sub(x.amax(-1, true));
  return shifted.sub(shifted.exp().sum(-1, true).log());
}

/** GELU with the tanh approximation. */
export function gelu(x: Tensor): Tensor {
  return x.gelu();
}

/**
 * Causal scaled dot-product attention on q, k, v of shape [..., T, D] (e.g. [B, heads, T, D]):
 * softmax(q kᵀ / sqrt(D)) v with future positions masked. One node; its gradient is one node too.
 * k and v may have fewer heads than q (axis -3), a number that divides q's: grouped-query attention,
 * or multi-query with one KV head. Query head h reads KV head h / (heads / kvHeads); K and V are never
 * repeated in memory.
 */
export function causalAttention(q: Tensor, k: Tensor, v: Tensor): Tensor {
  return new Tensor(emit("attention", [q.value, k.value, v.value])[0]);
}

export interface AttentionOptions {
  /** Query i sees only keys j <= i (counted from the start of both, as PyTorch's is_causal). Default false. */
  causal?: boolean;
  /**
   * Added to the scores q kᵀ / sqrt(D) before the softmax, as PyTorch's float attn_mask: an f32 tensor that
   * broadcasts to the scores [..., heads, Tq, Tk], e.g. [Tq, Tk] for every example and head, [B, 1, 1, Tk] or
   * [B, 1, Tq, Tk] per example (padding), [1, H, Tq, Tk] or [H, Tq, Tk] per head. -Infinity where a query
   * must not see a key; a query that sees no key gets zeros. A mask computed from parameters is a learned
   * additive bias (T5's relative positions, ALiBi's slopes): it gets its gradient, summed over the axes it
   * broadcasts over.
   */
  mask?: Tensor;
}

/**
 * Scaled dot-product attention, as torch.nn.functional.scaled_dot_product_attention: q [..., Tq, D], k and
 * v [..., Tk, D] give softmax(q kᵀ / sqrt(D) + mask) v of shape [..., Tq, D]. Tq may differ from Tk
 * (cross-attention), and k and v may have fewer heads than q (axis -3), as in causalAttention. Not causal
 * unless `causal: true`. One fused node, as causalAttention.
 */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  const { causal = false, mask } = opts;
  const inputs = [q.value, k.value, v.value, ...(mask ? [mask.value] : [])];
  return new Tensor(emit("attention", inputs, causal ? {} : { causal: false })[0]);
}

/**
 * Dropout (torch.nn.functional.dropout): in training, zeroes each element with probability p and scales
 * the others by 1 / (1 - p); in inference (the program `stow generate` runs) it is the identity, as it is
 * for p = 0. Each call draws its own masks, a new one each step, from a hash of (the call, the step, the
 * element), so a run is reproducible and the backward and recomputation redraw the same mask.
 */
export function dropout(x: Tensor, p: number): Tensor {
  if (!(p >= 0 && p < 1)) throw traceErrorHere(`dropout: the probability p must be in [0, 1), got ${p}`);
  const trace = currentTrace();
  if (p === 0 || !trace.training) return x;
  return new Tensor(emit("dropout", [x.value], { p, seed: trace.nextDropout++ })[0]);
}

/** SiLU (swish): x sigmoid(x). SwiGLU is silu(x W1) * (x W2). */
export function silu(x: Tensor): Tensor {
  return x.silu();
}

/**
 * Rotary position embeddings (RoFormer) on x [..., T, D], D even, positions 0..T-1 along axis -2. The
 * pairing is rotate-half (GPT-NeoX, LLaMA): x_i and x_{i+D/2} turn together by the angle
 * t base^(-2i/D), for i < D/2.
 */
export function rotaryEmbedding(x: Tensor, base = 10000): Tensor {
  return new Tensor(emit("rope", [x.value], { base })[0]);
}

/** Mean cross-entropy of logits [..., V] against integer targets [...]. Returns a scalar. */
export function crossEntropy(logits: Tensor, targets: Tensor): Tensor {
  return new Tensor(emit("cross_entropy", [logits.value, targets.value])[0]);
}

/**
 * Marks a computation for recomputation: under --checkpoint blocks only the region's inputs are kept for
 * the backward, and the region runs again there. Wrap a module, `checkpoint(block, x)` (which calls
 * `block.forward(x)`), or a function, `checkpoint(() => block.forward(x))`.
 */
export function checkpoint<T>(fn: () => T): T;
export function checkpoint<A extends unknown[], T>(module: { forward(...args: A): T }, ...args: A): T;
export function checkpoint<A extends unknown[], T>(target: (() => T) | { forward(...args: A): T }, ...args: A): T {
  return inCheckpointRegion(() => (typeof target === "function" ? target() : target.forward(...args)));
}
