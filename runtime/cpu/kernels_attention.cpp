// Scaled dot-product attention, one head at a time: the score matrix of a head is one sgemm
// (a causal mask's upper triangle is computed and ignored: the product is still several times faster
// than row-by-row dot products), softmax rows run in parallel, and the log-sum-exp of each row is
// saved so that the backward recomputes probabilities instead of keeping (B, heads, T, T).
// K and V may have fewer heads than Q (grouped or multi-query attention): query slab bh reads KV slab
// bh / group, in place, so K and V are never repeated in memory.
#include <cblas.h>

#include <algorithm>
#include <cstring>

#include "kernels.h"
#include "kernels_common.h"

namespace stow {
using namespace detail;

namespace {
// s[T, Tk] = scale * q k^T for one head.
void scores(float* s, const float* q, const float* k, int64_t T, int64_t Tk, int64_t D, float scale) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(T), int(Tk), int(D), scale, q, int(D), k, int(D), 0.0f, s,
              int(Tk));
}

// Keys query row i sees: 0 .. n - 1 (all of them unless causal).
inline int64_t keys_seen(int64_t i, int64_t Tk, bool causal) { return causal ? std::min(i + 1, Tk) : Tk; }
}  // namespace

// Workspace: one T x Tk score matrix.
void attention_fwd(Ctx& c, float* y, float* lse, const float* q, const float* k, const float* v, int64_t BH,
                   int64_t T, int64_t D, int64_t group, int64_t Tk, bool causal, const float* mask,
                   int64_t mask_heads, int64_t mask_batch, int64_t mask_head, int64_t mask_row) {
  if (Tk < 0) Tk = T;
  const math::MaskStrides m{mask_heads, mask_batch, mask_head, mask_row < 0 ? Tk : mask_row};
  float* s = static_cast<float*>(c.workspace(T * Tk * 4));
  c.touch(y, BH * T * D * 4);
  c.touch(lse, BH * T * 4);
  const float scale = 1.0f / std::sqrt(float(D));
  for (int64_t bh = 0; bh < BH; bh++) {
    const int64_t off = bh * T * D, kv = bh / group * Tk * D;
    scores(s, q + off, k + kv, T, Tk, D, scale);
    // Row i keeps the keys it sees as probabilities and zeroes the rest, so p v is an ordinary product.
#pragma omp parallel for schedule(static) num_threads(c.threads)
    for (int64_t i = 0; i < T; i++) {
      float* si = s + i * Tk;
      const int64_t n = keys_seen(i, Tk, causal);
      if (mask)
        for (int64_t j = 0; j < n; j++) si[j] += mask[m.row_of(bh, i) + j];
      const float mx = row_max(si, n);
      if (mx == -INFINITY) {  // the mask hides every key: the row attends to nothing
        std::memset(si, 0, Tk * 4);
        lse[bh * T + i] = -INFINITY;
        continue;
      }
      for (int64_t j = 0; j < n; j++) si[j] = vexp(si[j] - mx);
      const float sum = lane_sum<float>(n, [&](int64_t j) { return si[j]; });
      const float inv = 1.0f / sum;
      for (int64_t j = 0; j < n; j++) si[j] *= inv;
      std::memset(si + n, 0, (Tk - n) * 4);
      lse[bh * T + i] = mx + std::log(sum);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(T), int(D), int(Tk), 1.0f, s, int(Tk), v + kv, int(D),
                0.0f, y + off, int(D));
  }
}

// With p = exp(s - lse) (masked): dv = p^T dy,  dp = dy v^T,  ds = p (dp - rowsum(dy y)) * scale,
// dq = ds k,  dk = ds^T q. Workspace: two T x Tk matrices (p, then dp turned into ds).
// A KV slab's dk and dv are the sum over its group's query slabs, in slab order: the first product
// writes them (beta 0), the others add to them (beta 1), so the sum is bitwise reproducible. dmask
// adds each score's gradient p (dp - rowsum(dy y)) in slab order, then query order: the rows run in
// parallel only when each writes its own mask row.
void attention_bwd(Ctx& c, float* dq, float* dk, float* dv, const float* q, const float* k, const float* v,
                   const float* y, const float* lse, const float* dy, int64_t BH, int64_t T, int64_t D,
                   int64_t group, int64_t Tk, bool causal, const float* mask, float* dmask, int64_t mask_heads,
                   int64_t mask_batch, int64_t mask_head, int64_t mask_row) {
  if (Tk < 0) Tk = T;
  const math::MaskStrides m{mask_heads, mask_batch, mask_head, mask_row < 0 ? Tk : mask_row};
  if (dmask) {
    c.touch(dmask, m.elements(BH, T, Tk) * 4);
    std::memset(dmask, 0, m.elements(BH, T, Tk) * 4);
  }
  const bool rows_apart = !dmask || m.row != 0;
  float* p = static_cast<float*>(c.workspace(2 * T * Tk * 4));
  float* ds = p + T * Tk;
  c.touch(dq, BH * T * D * 4);
  c.touch(dk, BH / group * Tk * D * 4);
  c.touch(dv, BH / group * Tk * D * 4);
  const float scale = 1.0f / std::sqrt(float(D));
  for (int64_t bh = 0; bh < BH; bh++) {
    const int64_t off = bh * T * D, kv = bh / group * Tk * D;
    const float beta = bh % group == 0 ? 0.0f : 1.0f;
    scores(p, q + off, k + kv, T, Tk, D, scale);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(T), int(Tk), int(D), 1.0f, dy + off, int(D), v + kv,
                int(D), 0.0f, ds, int(Tk));
#pragma omp parallel for schedule(static) num_threads(c.threads) if (rows_apart)
    for (int64_t i = 0; i < T; i++) {
      float* pi = p + i * Tk;
      float* dsi = ds + i * Tk;
      const float row_lse = lse[bh * T + i];
      // A row that saw no key has no gradient.
      const int64_t n = row_lse == -INFINITY ? 0 : keys_seen(i, Tk, causal);
      const float dyi_yi = dot(dy + off + i * D, y + off + i * D, D);
      if (mask)
        for (int64_t j = 0; j < n; j++) pi[j] += mask[m.row_of(bh, i) + j];
      // Two loops, so that the one without dmask vectorizes as it always did; the same values either way.
      if (dmask) {
        float* dmi = dmask + m.row_of(bh, i);
        for (int64_t j = 0; j < n; j++) {
          pi[j] = vexp(pi[j] - row_lse);
          const float ds_unscaled = pi[j] * (dsi[j] - dyi_yi);
          dmi[j] += ds_unscaled;
          dsi[j] = ds_unscaled * scale;
        }
      } else {
        for (int64_t j = 0; j < n; j++) {
          pi[j] = vexp(pi[j] - row_lse);
          dsi[j] = pi[j] * (dsi[j] - dyi_yi) * scale;
        }
      }
      std::memset(pi + n, 0, (Tk - n) * 4);
      std::memset(dsi + n, 0, (Tk - n) * 4);
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(Tk), int(D), int(T), 1.0f, p, int(Tk), dy + off, int(D),
                beta, dv + kv, int(D));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(T), int(D), int(Tk), 1.0f, ds, int(Tk), k + kv, int(D),
                0.0f, dq + off, int(D));
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(Tk), int(D), int(T), 1.0f, ds, int(Tk), q + off, int(D),
                beta, dk + kv, int(D));
  }
}

}  // namespace stow
