// Causal scaled dot-product attention, one query row at a time, with the log-sum-exp of each row
// saved so that the backward recomputes probabilities instead of storing the T x T matrix.
#include <cstring>

#include "kernels.h"
#include "kernels_common.h"

namespace stow {
using namespace detail;

// Rows (bh, i) are independent, so the forward runs them all in parallel; each thread keeps its
// row of scores in its own T floats of workspace.
void attention_fwd(Ctx& c, float* y, float* lse, const float* q, const float* k, const float* v, int64_t BH,
                   int64_t T, int64_t D) {
  float* ws = static_cast<float*>(c.workspace(int64_t(c.threads) * T * 4));
  c.touch(y, BH * T * D * 4);
  c.touch(lse, BH * T * 4);
  const float scale = 1.0f / std::sqrt(float(D));
#pragma omp parallel for schedule(static) num_threads(c.threads)
  for (int64_t row = 0; row < BH * T; row++) {
    float* s = ws + int64_t(omp_get_thread_num()) * T;
    const int64_t i = row % T;
    const float* qi = q + row * D;
    const float* kb = k + (row - i) * D;  // this head's k and v start at row (bh, 0)
    const float* vb = v + (row - i) * D;
    for (int64_t j = 0; j <= i; j++) s[j] = dot(qi, kb + j * D, D) * scale;
    const float mx = row_max(s, i + 1);
    for (int64_t j = 0; j <= i; j++) s[j] = vexp(s[j] - mx);
    const float sum = lane_sum<float>(i + 1, [&](int64_t j) { return s[j]; });
    lse[row] = mx + std::log(sum);
    float* yi = y + row * D;
    std::memset(yi, 0, D * 4);
    for (int64_t j = 0; j <= i; j++) axpy(yi, s[j], vb + j * D, D);
    const float inv = 1.0f / sum;
    for (int64_t d = 0; d < D; d++) yi[d] *= inv;
  }
}

// For row i with p_j = exp(s_ij - lse_i):  dv_j += p_j dy_i,  ds_j = p_j (dy_i . v_j - dy_i . y_i),
// dq_i = scale sum_j ds_j k_j,  dk_j += scale ds_j q_i. Parallel over bh only; within a head rows run
// in order, so dk and dv accumulate in a fixed order for any thread count.
void attention_bwd(Ctx& c, float* dq, float* dk, float* dv, const float* q, const float* k, const float* v,
                   const float* y, const float* lse, const float* dy, int64_t BH, int64_t T, int64_t D) {
  float* ws = static_cast<float*>(c.workspace(int64_t(c.threads) * 2 * T * 4));
  c.touch(dq, BH * T * D * 4);
  c.touch(dk, BH * T * D * 4);
  c.touch(dv, BH * T * D * 4);
  const float scale = 1.0f / std::sqrt(float(D));
#pragma omp parallel for schedule(static) num_threads(c.threads)
  for (int64_t bh = 0; bh < BH; bh++) {
    float* p = ws + int64_t(omp_get_thread_num()) * 2 * T;
    float* dp = p + T;
    const int64_t off = bh * T * D;
    std::memset(dk + off, 0, T * D * 4);
    std::memset(dv + off, 0, T * D * 4);
    for (int64_t i = 0; i < T; i++) {
      const int64_t ri = off + i * D;
      const float* qi = q + ri;
      const float* dyi = dy + ri;
      const float row_lse = lse[bh * T + i];
      for (int64_t j = 0; j <= i; j++) {
        p[j] = dot(qi, k + off + j * D, D) * scale - row_lse;
        dp[j] = dot(dyi, v + off + j * D, D);
      }
      for (int64_t j = 0; j <= i; j++) p[j] = vexp(p[j]);
      const float dyi_yi = dot(dyi, y + ri, D);
      float* dqi = dq + ri;
      std::memset(dqi, 0, D * 4);
      for (int64_t j = 0; j <= i; j++) {
        const float ds = p[j] * (dp[j] - dyi_yi) * scale;
        axpy(dqi, ds, k + off + j * D, D);
        axpy(dk + off + j * D, ds, qi, D);
        axpy(dv + off + j * D, p[j], dyi, D);
      }
    }
  }
}

}  // namespace stow
