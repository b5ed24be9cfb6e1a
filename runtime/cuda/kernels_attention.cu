// Scaled dot-product attention without a T x Tk matrix in memory: one warp per query row (per key row
// in the backward's dk/dv), walking the other side 32 rows at a time. In each tile a lane takes
// one row for the scores (a dot product of length D), then the warp accumulates the tile's rows into
// its output, lane l owning columns l, l + 32, ... The forward keeps a running max and sum (online
// softmax) and saves the log-sum-exp of each row; the backward recomputes the probabilities from it.
// KV slab bh / group serves query slab bh (grouped and multi-query attention). Causal attention walks
// keys 0..i for query i; otherwise every key, and the optional mask (broadcast over the slabs and
// queries by its strides, kernel_list.h) is added to the scores. A learned mask's gradient is one more
// kernel, a thread per mask entry.
#include <string>

#include "launch.h"

namespace stow::cuda {
namespace {

constexpr int kPerLane = int(kMaxHeadDim / 32);  // output columns per lane

struct Dims {
  int64_t BH, T, group, Tk;
  int D;
  float scale;
  bool causal;
  const float* mask;  // or nullptr
  math::MaskStrides at;
};

// The last key query i sees.
__device__ inline int64_t last_key(const Dims& d, int64_t i) { return d.causal && i < d.Tk - 1 ? i : d.Tk - 1; }

__device__ inline float dot(const float* a, const float* b, int D) {
  float s = 0.0f;
  for (int e = 0; e < D; e++) s += a[e] * b[e];
  return s;
}

// The score of query row qi (slab bh, position i) against key j, mask included.
__device__ inline float score(const float* qi, const float* kj, int64_t bh, int64_t i, int64_t j, const Dims& d) {
  const float s = dot(qi, kj, d.D) * d.scale;
  return d.mask ? s + d.mask[d.at.row_of(bh, i) + j] : s;
}

// score - lse. Without a mask it is spelled as one expression, as before masks existed, so that nvcc
// contracts it (into an FMA) as it did: causal models keep their numerics on the GPU.
__device__ inline float score_minus(const float* qi, const float* kj, int64_t bh, int64_t i, int64_t j, const Dims& d,
                                   float lse) {
  if (d.mask) return score(qi, kj, bh, i, j, d) - lse;
  return dot(qi, kj, d.D) * d.scale - lse;
}

// The warp's row: slab bh, position i (blockDim.x is a multiple of 32, so a warp never straddles two).
__device__ inline int64_t warp_row() { return (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32; }

__global__ void attention_fwd_kernel(float* y, float* lse, const float* q, const float* k, const float* v, Dims d) {
  const int64_t row = warp_row();
  const int lane = threadIdx.x % 32;
  if (row >= d.BH * d.T) return;
  const int64_t bh = row / d.T, i = row % d.T;
  const float* qi = q + row * d.D;
  const float* kb = k + bh / d.group * d.Tk * d.D;
  const float* vb = v + bh / d.group * d.Tk * d.D;
  const int64_t jn = last_key(d, i);
  float acc[kPerLane] = {};
  float m = -INFINITY, l = 0.0f;
  for (int64_t j0 = 0; j0 <= jn; j0 += 32) {
    const int64_t j = j0 + lane;
    const float s = j <= jn ? score(qi, kb + j * d.D, bh, i, j, d) : -INFINITY;
    // Finite without a mask (key j0 is in every tile); -inf while a mask has hidden every key so far,
    // which then adds nothing and keeps m.
    const float m_new = math::max_f(m, warp_max(s));
    const float p = m_new == -INFINITY ? 0.0f : math::vexp(s - m_new);           // 0 for the masked keys
    const float correction = m_new == -INFINITY ? 1.0f : math::vexp(m - m_new);  // 0 on the first tile
    l = l * correction + warp_sum(p);
    m = m_new;
    const int last = int(jn - j0 < 31 ? jn - j0 : 31);
#pragma unroll
    for (int r = 0; r < kPerLane; r++) acc[r] *= correction;
    for (int t = 0; t <= last; t++) {
      const float pt = __shfl_sync(kFullWarp, p, t);
      const float* vj = vb + (j0 + t) * d.D;
#pragma unroll
      for (int r = 0; r < kPerLane; r++)
        if (lane + 32 * r < d.D) acc[r] += pt * vj[lane + 32 * r];
    }
  }
  // A row that saw no key (every score -inf) attends to nothing: y 0, lse -inf.
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
  for (int r = 0; r < kPerLane; r++)
    if (lane + 32 * r < d.D) y[row * d.D + lane + 32 * r] = acc[r] * inv;
  if (lane == 0) lse[row] = l > 0.0f ? m + logf(l) : -INFINITY;
}

// delta[row] = dy_row . y_row: the term rowsum(dy * y) of the softmax gradient.
__global__ void attention_delta_kernel(float* delta, const float* y, const float* dy, Dims d) {
  const int64_t row = warp_row();
  const int lane = threadIdx.x % 32;
  if (row >= d.BH * d.T) return;
  float s = 0.0f;
  for (int e = lane; e < d.D; e += 32) s += dy[row * d.D + e] * y[row * d.D + e];
  s = warp_sum(s);
  if (lane == 0) delta[row] = s;
}

// dq_i = sum_j ds_ij k_j over the keys query i sees, with p_ij = exp(s_ij - lse_i) and
// ds_ij = p_ij (dy_i . v_j - delta_i) scale.
__global__ void attention_dq_kernel(float* dq, const float* q, const float* k, const float* v, const float* lse,
                                    const float* delta, const float* dy, Dims d) {
  const int64_t row = warp_row();
  const int lane = threadIdx.x % 32;
  if (row >= d.BH * d.T) return;
  const int64_t bh = row / d.T, i = row % d.T;
  const float* kb = k + bh / d.group * d.Tk * d.D;
  const float* vb = v + bh / d.group * d.Tk * d.D;
  // A row that saw no key has no gradient.
  const int64_t jn = lse[row] == -INFINITY ? -1 : last_key(d, i);
  float acc[kPerLane] = {};
  for (int64_t j0 = 0; j0 <= jn; j0 += 32) {
    const int64_t j = j0 + lane;
    float ds = 0.0f;
    if (j <= jn) {
      const float p = math::vexp(score_minus(q + row * d.D, kb + j * d.D, bh, i, j, d, lse[row]));
      ds = p * (dot(dy + row * d.D, vb + j * d.D, d.D) - delta[row]) * d.scale;
    }
    const int last = int(jn - j0 < 31 ? jn - j0 : 31);
    for (int t = 0; t <= last; t++) {
      const float dst = __shfl_sync(kFullWarp, ds, t);
      const float* kj = kb + (j0 + t) * d.D;
#pragma unroll
      for (int r = 0; r < kPerLane; r++)
        if (lane + 32 * r < d.D) acc[r] += dst * kj[lane + 32 * r];
    }
  }
#pragma unroll
  for (int r = 0; r < kPerLane; r++)
    if (lane + 32 * r < d.D) dq[row * d.D + lane + 32 * r] = acc[r];
}

// For key j of KV slab h: dv_j = sum p_ij dy_i and dk_j = sum ds_ij q_i over the query slabs of its group
// in slab order and their rows that see key j in order (i >= j when causal, else every row).
__global__ void attention_dkdv_kernel(float* dk, float* dv, const float* q, const float* k, const float* v,
                                      const float* lse, const float* delta, const float* dy, Dims d) {
  const int64_t row = warp_row();  // KV slab h, key j
  const int lane = threadIdx.x % 32;
  if (row >= d.BH / d.group * d.Tk) return;
  const int64_t h = row / d.Tk, j = row % d.Tk;
  const int64_t i_first = d.causal ? j : 0;
  const float* kj = k + row * d.D;
  const float* vj = v + row * d.D;
  float acc_k[kPerLane] = {}, acc_v[kPerLane] = {};
  for (int64_t bh = h * d.group; bh < (h + 1) * d.group; bh++) {
    const float* qb = q + bh * d.T * d.D;
    const float* dyb = dy + bh * d.T * d.D;
    for (int64_t i0 = i_first; i0 < d.T; i0 += 32) {
      const int64_t i = i0 + lane;
      float p = 0.0f, ds = 0.0f;
      if (i < d.T && lse[bh * d.T + i] != -INFINITY) {  // a row that saw no key has no gradient
        const int64_t qrow = bh * d.T + i;
        p = math::vexp(score_minus(qb + i * d.D, kj, bh, i, j, d, lse[qrow]));
        ds = p * (dot(dyb + i * d.D, vj, d.D) - delta[qrow]) * d.scale;
      }
      const int last = int(d.T - 1 - i0 < 31 ? d.T - 1 - i0 : 31);
      for (int t = 0; t <= last; t++) {
        const float pt = __shfl_sync(kFullWarp, p, t), dst = __shfl_sync(kFullWarp, ds, t);
        const float* qi = qb + (i0 + t) * d.D;
        const float* dyi = dyb + (i0 + t) * d.D;
#pragma unroll
        for (int r = 0; r < kPerLane; r++)
          if (lane + 32 * r < d.D) {
            acc_v[r] += pt * dyi[lane + 32 * r];
            acc_k[r] += dst * qi[lane + 32 * r];
          }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kPerLane; r++)
    if (lane + 32 * r < d.D) {
      dk[row * d.D + lane + 32 * r] = acc_k[r];
      dv[row * d.D + lane + 32 * r] = acc_v[r];
    }
}

// dmask[e]: the gradient p_ij (dy_i . v_j - delta_i) of every score that reads mask entry e (key j), summed
// over those slabs in order, then those queries in order, as the CPU kernel sums them. The strides are
// nested (kernel_math.h's MaskStrides), so e's batch, head and query follow by division; an axis the mask
// broadcasts over is walked whole.
__global__ void attention_dmask_kernel(float* dmask, const float* q, const float* k, const float* v, const float* lse,
                                       const float* delta, const float* dy, Dims d, int64_t entries) {
  const int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= entries) return;
  const math::MaskStrides& m = d.at;
  const int64_t j = e % d.Tk;
  int64_t r = e - j, b0 = 0, b1 = d.BH / m.heads, h0 = 0, h1 = m.heads, i0 = 0, i1 = d.T;
  if (m.batch != 0) b0 = r / m.batch, b1 = b0 + 1, r -= b0 * m.batch;
  if (m.head != 0) h0 = r / m.head, h1 = h0 + 1, r -= h0 * m.head;
  if (m.row != 0) i0 = r / m.row, i1 = i0 + 1;
  float acc = 0.0f;
  for (int64_t b = b0; b < b1; b++)
    for (int64_t h = h0; h < h1; h++) {
      const int64_t bh = b * m.heads + h;
      const float* kj = k + (bh / d.group * d.Tk + j) * d.D;
      const float* vj = v + (bh / d.group * d.Tk + j) * d.D;
      for (int64_t i = i0; i < i1; i++) {
        const int64_t row = bh * d.T + i;
        if ((d.causal && j > i) || lse[row] == -INFINITY) continue;  // the query does not see key j
        const float p = math::vexp(score_minus(q + row * d.D, kj, bh, i, j, d, lse[row]));
        acc += p * (dot(dy + row * d.D, vj, d.D) - delta[row]);
      }
    }
  dmask[e] = acc;
}

Dims dims(const Ctx& c, int64_t BH, int64_t T, int64_t D, int64_t group, int64_t Tk, bool causal, const float* mask,
          const math::MaskStrides& at) {
  if (D < 1 || D > kMaxHeadDim)
    throw Error("attention: head size " + std::to_string(D) + " is not supported by the CUDA backend (1 to " +
                std::to_string(kMaxHeadDim) + ") (node " + c.node + ")");
  if (group < 1 || BH % group != 0) throw Error(std::string("internal: attention group does not divide the heads (node ") + c.node + ")");
  if (Tk < 0) Tk = T;
  return {BH, T, group, Tk, int(D), 1.0f / std::sqrt(float(D)), causal, mask, {at.heads, at.batch, at.head, at.row < 0 ? Tk : at.row}};
}

unsigned warp_blocks(int64_t warps) { return unsigned((warps * 32 + kBlock - 1) / kBlock); }

}  // namespace

void attention_fwd(Ctx& c, float* y, float* lse, const float* q, const float* k, const float* v, int64_t BH, int64_t T,
                   int64_t D, int64_t group, int64_t Tk, bool causal, const float* mask, int64_t mask_heads,
                   int64_t mask_batch, int64_t mask_head, int64_t mask_row) {
  const Dims d = dims(c, BH, T, D, group, Tk, causal, mask, {mask_heads, mask_batch, mask_head, mask_row});
  c.touch(y, BH * T * D * 4);
  c.touch(lse, BH * T * 4);
  if (BH * T == 0) return;
  STOW_LAUNCH(attention_fwd_kernel, warp_blocks(BH * T), kBlock, runtime(c).compute())(y, lse, q, k, v, d);
  check_launch(c, "attention_fwd");
}

// delta lives in the runtime's scratch (BH * T floats) until the two gradient kernels have read it.
void attention_bwd(Ctx& c, float* dq, float* dk, float* dv, const float* q, const float* k, const float* v,
                   const float* y, const float* lse, const float* dy, int64_t BH, int64_t T, int64_t D, int64_t group,
                   int64_t Tk, bool causal, const float* mask, float* dmask, int64_t mask_heads, int64_t mask_batch,
                   int64_t mask_head, int64_t mask_row) {
  const Dims d = dims(c, BH, T, D, group, Tk, causal, mask, {mask_heads, mask_batch, mask_head, mask_row});
  const int64_t mask_entries = dmask ? d.at.elements(BH, T, d.Tk) : 0;
  c.touch(dq, BH * T * D * 4);
  c.touch(dk, BH / group * d.Tk * D * 4);
  c.touch(dv, BH / group * d.Tk * D * 4);
  if (dmask) c.touch(dmask, mask_entries * 4);
  if (BH * T == 0) {
    if (mask_entries > 0)  // no score reads the mask
      check(cudaMemsetAsync(dmask, 0, size_t(mask_entries) * 4, runtime(c).compute()),
            std::string("zeroing a mask's gradient (node ") + c.node + ")");
    return;
  }
  cudaStream_t stream = runtime(c).compute();
  float* delta = static_cast<float*>(runtime(c).scratch(BH * T * 4));
  STOW_LAUNCH(attention_delta_kernel, warp_blocks(BH * T), kBlock, stream)(delta, y, dy, d);
  check_launch(c, "attention_bwd delta");
  STOW_LAUNCH(attention_dq_kernel, warp_blocks(BH * T), kBlock, stream)(dq, q, k, v, lse, delta, dy, d);
  check_launch(c, "attention_bwd dq");
  STOW_LAUNCH(attention_dkdv_kernel, warp_blocks(BH / group * d.Tk), kBlock, stream)(dk, dv, q, k, v, lse, delta, dy, d);
  check_launch(c, "attention_bwd dk dv");
  if (mask_entries == 0) return;
  STOW_LAUNCH(attention_dmask_kernel, unsigned((mask_entries + kBlock - 1) / kBlock), kBlock, stream)(
      dmask, q, k, v, lse, delta, dy, d, mask_entries);
  check_launch(c, "attention_bwd dmask");
}

}  // namespace stow::cuda
