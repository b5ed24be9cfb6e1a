// The arithmetic of every IR op in plain float64 loops, written from the kernel contracts in
// runtime/core/kernel_list.h and from the textbook derivatives, never from ir/grad_rules.ts: the interpreter is
// the reference that gradient rules and passes are tested against. Clarity over speed throughout.
import type { BinaryFn, ReduceFn, UnaryFn } from "./op_attrs.ts";
import type { MaskLayout } from "./attention_mask.ts";
import { type Shape, numel } from "./types.ts";

const GELU_C = Math.sqrt(2 / Math.PI);

function lastDim(shape: Shape): number {
  return shape[shape.length - 1];
}

export function embedding(table: Float64Array, V: number, C: number, idx: Int32Array): Float64Array {
  const out = new Float64Array(idx.length * C);
  idx.forEach((row, n) => {
    if (row < 0 || row >= V) throw new Error(`embedding: index ${row} is outside the table of ${V} rows`);
    for (let c = 0; c < C; c++) out[n * C + c] = table[row * C + c];
  });
  return out;
}

export function embeddingBwd(idx: Int32Array, dy: Float64Array, V: number, C: number): Float64Array {
  const dtable = new Float64Array(V * C);
  idx.forEach((row, n) => {
    if (row < 0 || row >= V) throw new Error(`embedding_bwd: index ${row} is outside the table of ${V} rows`);
    for (let c = 0; c < C; c++) dtable[row * C + c] += dy[n * C + c];
  });
  return dtable;
}

/**
 * op(A) @ op(B), where op transposes the last two axes when its flag is set. Operands of equal rank
 * above 2 are batched over their leading axes; otherwise both are 2-D.
 */
export function matmul(a: Float64Array, aShape: Shape, b: Float64Array, bShape: Shape, ta: boolean, tb: boolean): Float64Array {
  const r = aShape.length;
  const [aRows, aCols] = [aShape[r - 2], aShape[r - 1]];
  const [bRows, bCols] = [bShape[bShape.length - 2], bShape[bShape.length - 1]];
  const M = ta ? aCols : aRows;
  const K = ta ? aRows : aCols;
  const N = tb ? bRows : bCols;
  const batch = numel(aShape) / (aRows * aCols);
  const out = new Float64Array(batch * M * N);
  for (let t = 0; t < batch; t++) {
    const aOff = t * aRows * aCols;
    const bOff = t * bRows * bCols;
    const opA = (i: number, k: number) => (ta ? a[aOff + k * aCols + i] : a[aOff + i * aCols + k]);
    const opB = (k: number, j: number) => (tb ? b[bOff + j * bCols + k] : b[bOff + k * bCols + j]);
    for (let i = 0; i < M; i++)
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += opA(i, k) * opB(k, j);
        out[t * M * N + i * N + j] = s;
      }
  }
  return out;
}

/** Elementwise `f(a[i], b[i % b.length])`: b's shape is a trailing part of a's. */
export function broadcast(a: Float64Array, b: Float64Array, f: (x: number, y: number) => number): Float64Array {
  return a.map((x, i) => f(x, b[i % b.length]));
}

/** Sums over the leading axes, leaving the trailing `cols` elements of each row. */
export function sumRows(x: Float64Array, cols: number): Float64Array {
  const out = new Float64Array(cols);
  x.forEach((v, i) => (out[i % cols] += v));
  return out;
}

function rowStats(x: Float64Array, r: number, C: number, eps: number): { mean: number; rstd: number } {
  let mean = 0;
  for (let c = 0; c < C; c++) mean += x[r * C + c];
  mean /= C;
  let variance = 0;
  for (let c = 0; c < C; c++) variance += (x[r * C + c] - mean) ** 2;
  variance /= C; // biased, as PyTorch
  return { mean, rstd: 1 / Math.sqrt(variance + eps) };
}

/** LayerNorm over rows of C; `b` undefined is a LayerNorm without bias. */
export function layernorm(x: Float64Array, w: Float64Array, b: Float64Array | undefined, C: number, eps: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / C; r++) {
    const { mean, rstd } = rowStats(x, r, C, eps);
    for (let c = 0; c < C; c++) y[r * C + c] = (x[r * C + c] - mean) * rstd * w[c] + (b ? b[c] : 0);
  }
  return y;
}

/**
 * With xhat = (x - mean) rstd and g = dy w:  dx = rstd (g - mean(g) - xhat mean(g xhat)),
 * dw = sum over rows of dy xhat, db = sum over rows of dy.
 */
export function layernormBwd(x: Float64Array, w: Float64Array, dy: Float64Array, C: number, eps: number): Float64Array[] {
  const dx = new Float64Array(x.length);
  const dw = new Float64Array(C);
  const db = new Float64Array(C);
  for (let r = 0; r < x.length / C; r++) {
    const { mean, rstd } = rowStats(x, r, C, eps);
    const xhat = (c: number) => (x[r * C + c] - mean) * rstd;
    let meanG = 0;
    let meanGXhat = 0;
    for (let c = 0; c < C; c++) {
      const g = dy[r * C + c] * w[c];
      meanG += g / C;
      meanGXhat += (g * xhat(c)) / C;
      dw[c] += dy[r * C + c] * xhat(c);
      db[c] += dy[r * C + c];
    }
    for (let c = 0; c < C; c++) dx[r * C + c] = rstd * (dy[r * C + c] * w[c] - meanG - xhat(c) * meanGXhat);
  }
  return [dx, dw, db];
}

export function gelu(x: Float64Array): Float64Array {
  return x.map((v) => 0.5 * v * (1 + Math.tanh(GELU_C * (v + 0.044715 * v ** 3))));
}

/** d/dx of 0.5 x (1 + tanh u), u = c (x + 0.044715 x^3). */
export function geluBwd(x: Float64Array, dy: Float64Array): Float64Array {
  return x.map((v, i) => {
    const th = Math.tanh(GELU_C * (v + 0.044715 * v ** 3));
    const du = GELU_C * (1 + 3 * 0.044715 * v * v);
    return dy[i] * (0.5 * (1 + th) + 0.5 * v * (1 - th * th) * du);
  });
}

export interface AttentionDims {
  /** Query slabs (batch x query heads). */
  BH: number;
  /** Query positions. */
  T: number;
  /** Key (and value) positions: T, except in cross-attention. */
  Tk: number;
  D: number;
  /** Query heads per KV head: query slab bh reads KV slab floor(bh / group). */
  group: number;
  /** Query i sees only keys j <= i. */
  causal: boolean;
  /** Added to the scores, broadcast over the slabs and queries as `maskLayout` says. */
  mask?: { values: Float64Array; layout: MaskLayout };
}

/** Where the mask entry of slab bh, query i, key j sits in the mask. */
function maskIndex(m: MaskLayout, bh: number, i: number, j: number): number {
  return Math.floor(bh / m.heads) * m.batch + (bh % m.heads) * m.head + i * m.row + j;
}

/** The score of query i of slab bh against key j: q_i . k_j / sqrt(D) plus the mask's entry; -Infinity where the query may not look. */
function attentionScore(q: Float64Array, k: Float64Array, bh: number, kBase: number, i: number, j: number, a: AttentionDims): number {
  if (a.causal && j > i) return -Infinity;
  const qBase = bh * a.T * a.D;
  let s = 0;
  for (let d = 0; d < a.D; d++) s += q[qBase + i * a.D + d] * k[kBase + j * a.D + d];
  return s / Math.sqrt(a.D) + (a.mask ? a.mask.values[maskIndex(a.mask.layout, bh, i, j)] : 0);
}

/**
 * Softmax attention over q [BH, T, D] and k, v [BH / group, Tk, D]: y_i = sum_j softmax_j(s[i, j]) v_j, with
 * the scores of attentionScore; returns y and each row's log-sum-exp. A row that sees no key (every
 * score -Infinity) attends to nothing: y 0 and lse -Infinity, as FlashAttention (PyTorch's math path gives NaN).
 */
export function attention(q: Float64Array, k: Float64Array, v: Float64Array, a: AttentionDims): Float64Array[] {
  const { BH, T, Tk, D, group } = a;
  const y = new Float64Array(BH * T * D);
  const lse = new Float64Array(BH * T);
  for (let bh = 0; bh < BH; bh++) {
    const base = bh * T * D;
    const kvBase = Math.floor(bh / group) * Tk * D;
    for (let i = 0; i < T; i++) {
      const s = Array.from({ length: Tk }, (_, j) => attentionScore(q, k, bh, kvBase, i, j, a));
      const max = Math.max(...s);
      const rowLse = max + Math.log(s.reduce((acc, sj) => acc + Math.exp(sj - max), 0));
      lse[bh * T + i] = max === -Infinity ? -Infinity : rowLse;
      if (max === -Infinity) continue;
      s.forEach((sj, j) => {
        const p = Math.exp(sj - rowLse);
        for (let d = 0; d < D; d++) y[base + i * D + d] += p * v[kvBase + j * D + d];
      });
    }
  }
  return [y, lse];
}

/**
 * With p[i,j] = exp(s[i,j] - lse[i]) (0 where the query may not look) and dp[i,j] = dy_i . v_j (k_j, v_j
 * from the query slab's KV slab, whose dk, dv sum over every query slab of its group):
 *   dv_j = sum_i p[i,j] dy_i;  ds[i,j] = p[i,j] (dp[i,j] - dy_i . y_i);
 *   dq_i = sum_j ds[i,j] k_j / sqrt(D);  dk_j = sum_i ds[i,j] q_i / sqrt(D).
 * (dy_i . y_i equals sum_j p[i,j] dp[i,j]; it uses the forward's y as the kernel does.) With `maskGrad`
 * a fourth result, the mask's gradient: ds[i,j] (the gradient of the masked score) summed over every
 * slab and query that reads the entry.
 */
export function attentionBwd(
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  y: Float64Array,
  lse: Float64Array,
  dy: Float64Array,
  a: AttentionDims,
  maskGrad = false,
): Float64Array[] {
  const { BH, T, Tk, D, group } = a;
  const dmask = maskGrad && a.mask ? new Float64Array(a.mask.values.length) : undefined;
  const dq = new Float64Array(q.length);
  const dk = new Float64Array(k.length);
  const dv = new Float64Array(v.length);
  const dot = (x: Float64Array, ix: number, z: Float64Array, iz: number) => {
    let s = 0;
    for (let d = 0; d < D; d++) s += x[ix + d] * z[iz + d];
    return s;
  };
  for (let bh = 0; bh < BH; bh++) {
    const base = bh * T * D;
    const kvBase = Math.floor(bh / group) * Tk * D;
    for (let i = 0; i < T; i++) {
      const row = base + i * D;
      if (lse[bh * T + i] === -Infinity) continue; // the row saw no key: no gradient
      const dyDotY = dot(dy, row, y, row);
      for (let j = 0; j < Tk; j++) {
        const p = Math.exp(attentionScore(q, k, bh, kvBase, i, j, a) - lse[bh * T + i]);
        if (p === 0) continue;
        const col = kvBase + j * D;
        const ds = p * (dot(dy, row, v, col) - dyDotY);
        if (dmask) dmask[maskIndex(a.mask!.layout, bh, i, j)] += ds;
        for (let d = 0; d < D; d++) {
          dv[col + d] += p * dy[row + d];
          dq[row + d] += (ds * k[col + d]) / Math.sqrt(D);
          dk[col + d] += (ds * q[row + d]) / Math.sqrt(D);
        }
      }
    }
  }
  return dmask ? [dq, dk, dv, dmask] : [dq, dk, dv];
}

/** x ^ (x >>> 16), times 0x7feb352d, ^ >>> 15, times 0x846ca68b, ^ >>> 16 (lowbias32): a 32-bit mix. */
function mix32(x: number): number {
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x = (x ^ (x >>> 15)) >>> 0;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

/**
 * Whether dropout keeps element `index` at `step` (1-based) for the stream `seed`: the top 24 bits of a
 * hash of (seed, step, the index's low and high 32 bits), as a fraction of 2^24, are at least p.
 */
export function dropoutKeep(seed: number, step: number, index: number, p: number): boolean {
  let h = mix32((seed ^ 0x9e3779b9) >>> 0);
  h = mix32((h ^ step) >>> 0);
  h = mix32((h ^ index) >>> 0);
  h = mix32((h ^ Math.floor(index / 2 ** 32)) >>> 0);
  return (h >>> 8) / 2 ** 24 >= Math.fround(p); // the kernels compare with p as a float32
}

/** y_i = x_i / (1 - p) where dropoutKeep, else 0. */
export function dropout(x: Float64Array, p: number, seed: number, step: number): Float64Array {
  return x.map((v, i) => (dropoutKeep(seed, step, i, p) ? v / (1 - p) : 0));
}

function logSumExp(xs: Float64Array): number {
  const max = Math.max(...xs);
  return max + Math.log(xs.reduce((acc, x) => acc + Math.exp(x - max), 0));
}

function checkTarget(t: number, V: number): void {
  if (t < 0 || t >= V) throw new Error(`cross_entropy: target ${t} is outside the vocabulary of ${V}`);
}

/** Mean over rows of lse(logits[n]) - logits[n, t_n]. */
export function crossEntropy(logits: Float64Array, targets: Int32Array, V: number): Float64Array {
  let total = 0;
  targets.forEach((t, n) => {
    checkTarget(t, V);
    const row = logits.subarray(n * V, (n + 1) * V);
    total += logSumExp(row) - row[t];
  });
  return Float64Array.of(total / targets.length);
}

/** dlogits[n, v] = dloss (softmax(logits[n])[v] - [v == t_n]) / N. */
export function crossEntropyBwd(logits: Float64Array, targets: Int32Array, dloss: number, V: number): Float64Array {
  const N = targets.length;
  const out = new Float64Array(logits.length);
  targets.forEach((t, n) => {
    checkTarget(t, V);
    const row = logits.subarray(n * V, (n + 1) * V);
    const lse = logSumExp(row);
    for (let v = 0; v < V; v++) out[n * V + v] = (dloss * (Math.exp(row[v] - lse) - (v === t ? 1 : 0))) / N;
  });
  return out;
}

/** Logits [N, V] = x [N, C] Wᵀ, with W stored [V, C] (tb) or [C, V]. */
function lmHeadLogits(x: Float64Array, w: Float64Array, N: number, C: number, V: number, tb: boolean): Float64Array {
  return matmul(x, [N, C], w, tb ? [V, C] : [C, V], false, tb);
}

/** The loss and the log-sum-exp of each row of the logits x Wᵀ (which are never returned). */
export function linearCrossEntropy(
  x: Float64Array,
  w: Float64Array,
  targets: Int32Array,
  C: number,
  V: number,
  tb: boolean,
): Float64Array[] {
  const N = targets.length;
  const logits = lmHeadLogits(x, w, N, C, V, tb);
  const lse = Float64Array.from({ length: N }, (_, n) => logSumExp(logits.subarray(n * V, (n + 1) * V)));
  return [crossEntropy(logits, targets, V), lse];
}

/**
 * With dlogits[n, v] = dloss (exp(logits[n, v] - lse[n]) - [v == t_n]) / N, using the forward's lse:
 * dx[n] = sum_v dlogits[n, v] W[v] and dW[v] = sum_n dlogits[n, v] x[n], dW laid out as W is.
 */
export function linearCrossEntropyBwd(
  x: Float64Array,
  w: Float64Array,
  targets: Int32Array,
  lse: Float64Array,
  dloss: number,
  C: number,
  V: number,
  tb: boolean,
): Float64Array[] {
  const N = targets.length;
  const logits = lmHeadLogits(x, w, N, C, V, tb);
  const dx = new Float64Array(N * C);
  const dw = new Float64Array(V * C);
  targets.forEach((t, n) => {
    checkTarget(t, V);
    for (let v = 0; v < V; v++) {
      const d = (dloss * (Math.exp(logits[n * V + v] - lse[n]) - (v === t ? 1 : 0))) / N;
      for (let c = 0; c < C; c++) {
        const wi = tb ? v * C + c : c * V + v;
        dx[n * C + c] += d * w[wi];
        dw[wi] += d * x[n * C + c];
      }
    }
  });
  return [dx, dw];
}

function strides(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d];
  }
  return s;
}

/** Output axis d is input axis perm[d]. */
/** A tensor of n elements of x's kind: the data-movement ops keep their input's dtype (f32 or i32). */
function like<T extends Float64Array | Int32Array>(x: T, n: number): T {
  return (x instanceof Int32Array ? new Int32Array(n) : new Float64Array(n)) as T;
}

export function transpose<T extends Float64Array | Int32Array>(x: T, inShape: Shape, perm: readonly number[]): T {
  const outShape = perm.map((p) => inShape[p]);
  const inStrides = strides(inShape);
  const out = like(x, x.length);
  const index = new Array<number>(outShape.length).fill(0); // multi-index into out, row-major order
  for (let o = 0; o < out.length; o++) {
    let src = 0;
    index.forEach((i, d) => (src += i * inStrides[perm[d]]));
    out[o] = x[src];
    for (let d = outShape.length - 1; d >= 0; d--) {
      if (++index[d] < outShape[d]) break;
      index[d] = 0;
    }
  }
  return out;
}

/** Splits the last axis of x (rows of `width`) into consecutive column blocks of the given sizes. */
export function split<T extends Float64Array | Int32Array>(x: T, width: number, sizes: readonly number[]): T[] {
  const rows = x.length / width;
  let offset = 0;
  return sizes.map((size) => {
    const part = like(x, rows * size);
    for (let r = 0; r < rows; r++) for (let c = 0; c < size; c++) part[r * size + c] = x[r * width + offset + c];
    offset += size;
    return part;
  });
}

/** Joins tensors along their last axis; `shapes` are the parts' shapes. */
export function concat<T extends Float64Array | Int32Array>(parts: T[], shapes: Shape[]): T {
  const widths = shapes.map(lastDim);
  const width = widths.reduce((s, w) => s + w, 0);
  const rows = parts[0].length / widths[0];
  const out = like(parts[0], rows * width);
  let offset = 0;
  parts.forEach((part, i) => {
    for (let r = 0; r < rows; r++) for (let c = 0; c < widths[i]; c++) out[r * width + offset + c] = part[r * widths[i] + c];
    offset += widths[i];
  });
  return out;
}

export function globalNorm(tensors: Float64Array[]): Float64Array {
  let sq = 0;
  for (const t of tensors) for (const x of t) sq += x * x;
  return Float64Array.of(Math.sqrt(sq));
}

export interface AdamHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step number, for bias correction. */
  t: number;
  /** Maximum global gradient norm; 0 disables clipping. */
  gradClip: number;
}

/** One AdamW step (the formula of runtime/core/kernel_list.h); returns new p, m, v. */
export function adamw(
  p: Float64Array,
  grad: Float64Array,
  m: Float64Array,
  v: Float64Array,
  h: AdamHyper,
  decay: boolean,
  norm: number | undefined,
): Float64Array[] {
  const gscale = norm !== undefined && h.gradClip > 0 ? Math.min(1, h.gradClip / (norm + 1e-6)) : 1;
  const newP = new Float64Array(p.length);
  const newM = new Float64Array(p.length);
  const newV = new Float64Array(p.length);
  for (let i = 0; i < p.length; i++) {
    const g = grad[i] * gscale;
    let pi = p[i];
    if (decay) pi -= h.lr * h.weightDecay * pi;
    newM[i] = h.beta1 * m[i] + (1 - h.beta1) * g;
    newV[i] = h.beta2 * v[i] + (1 - h.beta2) * g * g;
    const denom = Math.sqrt(newV[i]) / Math.sqrt(1 - h.beta2 ** h.t) + h.eps;
    newP[i] = pi - (h.lr / (1 - h.beta1 ** h.t)) * (newM[i] / denom);
  }
  return [newP, newM, newV];
}

/**
 * Rotary embeddings on rows [..., T, D], rotate-half pairing: for i < D/2 the pair (x_i, x_{i+D/2}) at
 * position t turns by the angle t base^(-2i/D); inverse turns it back by the same angle.
 */
export function rope(x: Float64Array, T: number, D: number, base: number, inverse: boolean): Float64Array {
  const half = D / 2;
  const out = new Float64Array(x.length);
  for (let row = 0; row < x.length / D; row++) {
    const t = row % T;
    for (let i = 0; i < half; i++) {
      const angle = t * base ** ((-2 * i) / D);
      const [cos, sin] = [Math.cos(angle), inverse ? -Math.sin(angle) : Math.sin(angle)];
      const [a, b] = [x[row * D + i], x[row * D + i + half]];
      out[row * D + i] = a * cos - b * sin;
      out[row * D + i + half] = b * cos + a * sin;
    }
  }
  return out;
}

/** silu(x) = x sigmoid(x). */
export function silu(x: Float64Array): Float64Array {
  return x.map((v) => v / (1 + Math.exp(-v)));
}

/** d/dx [x s(x)] = s(x) (1 + x (1 - s(x))). */
export function siluBwd(x: Float64Array, dy: Float64Array): Float64Array {
  return x.map((v, i) => {
    const s = 1 / (1 + Math.exp(-v));
    return dy[i] * s * (1 + v * (1 - s));
  });
}

/** y = fn(x) of the `unary` op; `p` is pow's exponent. */
export function unaryValue(fn: UnaryFn, x: number, p: number): number {
  switch (fn) {
    case "neg":
      return -x;
    case "exp":
      return Math.exp(x);
    case "log":
      return Math.log(x);
    case "sqrt":
      return Math.sqrt(x);
    case "rsqrt":
      return 1 / Math.sqrt(x);
    case "tanh":
      return Math.tanh(x);
    case "sigmoid":
      return 1 / (1 + Math.exp(-x));
    case "abs":
      return Math.abs(x);
    case "relu":
      return x > 0 ? x : 0;
    case "square":
      return x * x;
    case "reciprocal":
      return 1 / x;
    case "pow":
      return x ** p;
  }
}

/** d fn(x) / dx (abs and relu: 0 at 0, as PyTorch). */
export function unaryDerivative(fn: UnaryFn, x: number, p: number): number {
  switch (fn) {
    case "neg":
      return -1;
    case "exp":
      return Math.exp(x);
    case "log":
      return 1 / x;
    case "sqrt":
      return 0.5 / Math.sqrt(x);
    case "rsqrt":
      return -0.5 / (x * Math.sqrt(x));
    case "tanh":
      return 1 - Math.tanh(x) ** 2;
    case "sigmoid": {
      const s = 1 / (1 + Math.exp(-x));
      return s * (1 - s);
    }
    case "abs":
      return Math.sign(x);
    case "relu":
      return x > 0 ? 1 : 0;
    case "square":
      return 2 * x;
    case "reciprocal":
      return -1 / (x * x);
    case "pow":
      return p * x ** (p - 1);
  }
}

export function binaryValue(fn: BinaryFn, a: number, b: number): number {
  switch (fn) {
    case "add":
      return a + b;
    case "sub":
      return a - b;
    case "mul":
      return a * b;
    case "div":
      return a / b;
    case "pow":
      return a ** b;
    case "maximum":
      return Math.max(a, b);
    case "minimum":
      return Math.min(a, b);
    case "eq":
      return Number(a === b);
    case "ne":
      return Number(a !== b);
    case "lt":
      return Number(a < b);
    case "le":
      return Number(a <= b);
    case "gt":
      return Number(a > b);
    case "ge":
      return Number(a >= b);
  }
}

/** d fn(a, b) / da (side 0) or / db (side 1). maximum and minimum split a tie evenly, as PyTorch. */
export function binaryDerivative(fn: BinaryFn, a: number, b: number, side: 0 | 1): number {
  switch (fn) {
    case "add":
      return 1;
    case "sub":
      return side === 0 ? 1 : -1;
    case "mul":
      return side === 0 ? b : a;
    case "div":
      return side === 0 ? 1 / b : -a / (b * b);
    case "pow":
      return side === 0 ? b * a ** (b - 1) : a ** b * Math.log(a);
    case "maximum":
    case "minimum": {
      if (a === b) return 0.5;
      const aWins = fn === "maximum" ? a > b : a < b;
      return aWins === (side === 0) ? 1 : 0;
    }
    case "eq":
    case "ne":
    case "lt":
    case "le":
    case "gt":
    case "ge":
      return 0;
  }
}

/** b's element paired with a[i] by `binary` (ir/ops.ts binaryBroadcast). */
export function broadcastIndex(i: number, inner: number, nb: number): number {
  return Math.floor(i / inner) % nb;
}

/** `reduce` over rows of C: [rows * C] -> [rows]. */
export function reduceRows(fn: ReduceFn, x: Float64Array, C: number): Float64Array {
  const rows = x.length / C;
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const row = x.subarray(r * C, (r + 1) * C);
    if (fn === "max") out[r] = row.reduce((m, v) => Math.max(m, v), -Infinity);
    else out[r] = row.reduce((s, v) => s + v, 0) / (fn === "mean" ? C : 1);
  }
  return out;
}

/** dx of `reduce`: dy spread over the row (max: split evenly among the elements equal to the max). */
export function reduceRowsBwd(fn: ReduceFn, x: Float64Array, y: Float64Array, dy: Float64Array, C: number): Float64Array {
  const dx = new Float64Array(x.length);
  for (let r = 0; r < dy.length; r++) {
    const row = x.subarray(r * C, (r + 1) * C);
    const ties = fn === "max" ? row.filter((v) => v === y[r]).length : 0;
    for (let c = 0; c < C; c++) {
      if (fn === "max") dx[r * C + c] = row[c] === y[r] ? dy[r] / ties : 0;
      else dx[r * C + c] = fn === "mean" ? dy[r] / C : dy[r];
    }
  }
  return dx;
}

// ---- Data movement along any axis: written over multi-indices, for clarity -------------------------

/** The multi-index of flat position i in a row-major tensor of `shape`. */
function unravel(i: number, shape: Shape): number[] {
  const index = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    index[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return index;
}

/** The flat position of a multi-index in a row-major tensor of `shape`. */
function ravel(index: readonly number[], shape: Shape): number {
  return index.reduce((flat, i, d) => flat * shape[d] + i, 0);
}

/** `slice`: positions [start, start + length) of axis `dim`. */
export function sliceAxis<T extends Float64Array | Int32Array>(x: T, shape: Shape, dim: number, start: number, length: number): T {
  const outShape = shape.map((d, i) => (i === dim ? length : d));
  const out = like(x, numel(outShape));
  for (let o = 0; o < out.length; o++) {
    const index = unravel(o, outShape);
    index[dim] += start;
    out[o] = x[ravel(index, shape)];
  }
  return out;
}

/** `pad` with amounts for every axis (negative ones crop): out[i] = x[i - before] inside x, else value. */
export function pad<T extends Float64Array | Int32Array>(
  x: T,
  shape: Shape,
  before: readonly number[],
  after: readonly number[],
  value: number,
): T {
  const outShape = shape.map((d, i) => d + before[i] + after[i]);
  const out = like(x, numel(outShape));
  for (let o = 0; o < out.length; o++) {
    const index = unravel(o, outShape).map((i, d) => i - before[d]);
    out[o] = index.every((i, d) => i >= 0 && i < shape[d]) ? x[ravel(index, shape)] : value;
  }
  return out;
}

/** `expand`: x of shape `small` (aligned with big's trailing axes) repeated along its axes of 1. */
export function expand<T extends Float64Array | Int32Array>(x: T, small: Shape, big: Shape): T {
  const out = like(x, numel(big));
  const offset = big.length - small.length;
  for (let o = 0; o < out.length; o++) {
    const index = unravel(o, big)
      .slice(offset)
      .map((i, d) => (small[d] === 1 ? 0 : i));
    out[o] = x[ravel(index, small)];
  }
  return out;
}

/** `expand_bwd`: each element of dy [big] added to the element of [small] that expand copied it from. */
export function expandBwd(dy: Float64Array, big: Shape, small: Shape): Float64Array {
  const dx = new Float64Array(numel(small));
  const offset = big.length - small.length;
  for (let o = 0; o < dy.length; o++) {
    const index = unravel(o, big)
      .slice(offset)
      .map((i, d) => (small[d] === 1 ? 0 : i));
    dx[ravel(index, small)] += dy[o];
  }
  return dx;
}

function checkIndex(op: string, i: number, D: number): number {
  if (!(i >= 0 && i < D)) throw new Error(`interpret: ${op} index ${i} is outside [0, ${D})`);
  return i;
}

/** `index_select`: axis `dim` of x replaced by the indices' axes, each picking a slice of x. */
export function indexSelect<T extends Float64Array | Int32Array>(x: T, shape: Shape, dim: number, idx: Int32Array, idxShape: Shape): T {
  const outShape = [...shape.slice(0, dim), ...idxShape, ...shape.slice(dim + 1)];
  const out = like(x, numel(outShape));
  for (let o = 0; o < out.length; o++) {
    const index = unravel(o, outShape);
    const picked = idx[ravel(index.slice(dim, dim + idxShape.length), idxShape)];
    const src = [...index.slice(0, dim), checkIndex("index_select", picked, shape[dim]), ...index.slice(dim + idxShape.length)];
    out[o] = x[ravel(src, shape)];
  }
  return out;
}

/** dx of index_select: each element of dy added where its index sent it from. */
export function indexSelectBwd(idx: Int32Array, idxShape: Shape, dy: Float64Array, dyShape: Shape, dim: number, D: number): Float64Array {
  const xShape = [...dyShape.slice(0, dim), D, ...dyShape.slice(dim + idxShape.length)];
  const dx = new Float64Array(numel(xShape));
  for (let o = 0; o < dy.length; o++) {
    const index = unravel(o, dyShape);
    const picked = idx[ravel(index.slice(dim, dim + idxShape.length), idxShape)];
    dx[ravel([...index.slice(0, dim), checkIndex("index_select", picked, D), ...index.slice(dim + idxShape.length)], xShape)] += dy[o];
  }
  return dx;
}

/** `gather`: out[i] = x[i with axis dim replaced by idx[i]]. */
export function gather<T extends Float64Array | Int32Array>(x: T, shape: Shape, dim: number, idx: Int32Array, idxShape: Shape): T {
  const out = like(x, idx.length);
  for (let o = 0; o < out.length; o++) {
    const index = unravel(o, idxShape);
    index[dim] = checkIndex("gather", idx[o], shape[dim]);
    out[o] = x[ravel(index, shape)];
  }
  return out;
}

/** dx of gather: dy[i] added to dx at i with axis dim replaced by idx[i]. */
export function gatherBwd(idx: Int32Array, idxShape: Shape, dy: Float64Array, dim: number, D: number): Float64Array {
  const xShape = idxShape.map((d, i) => (i === dim ? D : d));
  const dx = new Float64Array(numel(xShape));
  for (let o = 0; o < dy.length; o++) {
    const index = unravel(o, idxShape);
    index[dim] = checkIndex("gather", idx[o], D);
    dx[ravel(index, xShape)] += dy[o];
  }
  return dx;
}
