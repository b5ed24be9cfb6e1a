// LayerNorm over the last axis, forward and backward.
#include <algorithm>

#include "kernels.h"
#include "kernels_common.h"

namespace stow {
using namespace detail;

namespace {
struct RowStats {
  float mean, rstd;
};

// Two passes (mean, then the mean square deviation) rather than E[x^2] - mean^2, which cancels badly
// when the mean is large. Forward and backward both call this, so they agree bit for bit.
RowStats row_stats(const float* x, int64_t C, float eps) {
  const float mean = lane_sum<float>(C, [&](int64_t i) { return x[i]; }) / float(C);
  const float var = lane_sum<float>(C, [&](int64_t i) {
                      const float d = x[i] - mean;
                      return d * d;
                    }) / float(C);
  return {mean, 1.0f / std::sqrt(var + eps)};
}

// dw (and, kBias, db) of columns [j0, j0 + width): sums over rows in row order. A template so that
// the LayerNorm without bias runs the same loop minus the db sum.
template <bool kBias>
void column_sums(float* dw, float* db, const float* x, const float* dy, const float* stats, int64_t rows,
                 int64_t C, int64_t j0, int64_t width) {
  float* dwb = dw + j0;
  float* dbb = kBias ? db + j0 : nullptr;
  for (int64_t j = 0; j < width; j++) dwb[j] = 0.0f;
  if constexpr (kBias)
    for (int64_t j = 0; j < width; j++) dbb[j] = 0.0f;
  for (int64_t r = 0; r < rows; r++) {
    const float mean = stats[2 * r], rstd = stats[2 * r + 1];
    const float* xr = x + r * C + j0;
    const float* dyr = dy + r * C + j0;
    for (int64_t j = 0; j < width; j++) {
      dwb[j] += dyr[j] * math::normalized(xr[j], mean, rstd);
      if constexpr (kBias) dbb[j] += dyr[j];
    }
  }
}
}  // namespace

void layernorm_fwd(Ctx& c, float* y, const float* x, const float* w, const float* b, int64_t rows, int64_t C, float eps) {
  c.touch(y, rows * C * 4);
#pragma omp parallel for schedule(static) num_threads(c.threads)
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * C;
    float* yr = y + r * C;
    const RowStats s = row_stats(xr, C, eps);
    if (b) {
      for (int64_t i = 0; i < C; i++) yr[i] = math::normalized(xr[i], s.mean, s.rstd) * w[i] + b[i];
    } else {
      for (int64_t i = 0; i < C; i++) yr[i] = math::normalized(xr[i], s.mean, s.rstd) * w[i];
    }
  }
}

// With xhat = (x - mean) rstd and g = dy w:  dx = rstd (g - mean(g) - xhat mean(g xhat)).
// dx is row-parallel; dw and db are column-parallel sums over rows in row order, reusing the row
// statistics that the first pass leaves in the workspace. db is null for a LayerNorm without bias.
void layernorm_bwd(Ctx& c, float* dx, float* dw, float* db, const float* x, const float* w, const float* dy,
                   int64_t rows, int64_t C, float eps) {
  float* stats = static_cast<float*>(c.workspace(rows * 2 * 4));  // [rows][mean, rstd]
  c.touch(dx, rows * C * 4);
  c.touch(dw, C * 4);
  if (db) c.touch(db, C * 4);
#pragma omp parallel for schedule(static) num_threads(c.threads)
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * C;
    const float* dyr = dy + r * C;
    const RowStats s = row_stats(xr, C, eps);
    stats[2 * r] = s.mean;
    stats[2 * r + 1] = s.rstd;
    const float g_mean = lane_sum<float>(C, [&](int64_t i) { return dyr[i] * w[i]; }) / float(C);
    const float gx_mean =
        lane_sum<float>(C, [&](int64_t i) { return dyr[i] * w[i] * math::normalized(xr[i], s.mean, s.rstd); }) / float(C);
    float* dxr = dx + r * C;
    for (int64_t i = 0; i < C; i++) {
      dxr[i] = math::layernorm_dx(dyr[i] * w[i], math::normalized(xr[i], s.mean, s.rstd), s.rstd, g_mean, gx_mean);
    }
  }
  const int64_t blocks = (C + kColBlock - 1) / kColBlock;
#pragma omp parallel for schedule(static) num_threads(c.threads)
  for (int64_t blk = 0; blk < blocks; blk++) {
    const int64_t j0 = blk * kColBlock, width = std::min(kColBlock, C - j0);
    if (db)
      column_sums<true>(dw, db, x, dy, stats, rows, C, j0, width);
    else
      column_sums<false>(dw, db, x, dy, stats, rows, C, j0, width);
  }
}

}  // namespace stow
