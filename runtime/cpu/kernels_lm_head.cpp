// The LM head fused with the mean cross-entropy (linear_cross_entropy and its backward). The logits
// [N, V] exist one tile at a time: an sgemm writes a tile into the workspace and the loss (or its
// gradient) is taken from it at once, so the step never holds N x V floats.
//
// The results do not depend on the tile, bitwise: every sum across vocabulary columns runs over fixed
// units of kColUnit columns (counted from column 0) combined in unit order, and dW's sum over rows over
// fixed units of kRowUnit rows, whatever the tile. A tile is used rounded down to whole units, so the
// planner may choose any tile (ir/passes/fuse_lm_head.ts) and the numbers stay the same.
#include <cblas.h>

#include <climits>

#include "kernels.h"
#include "kernels_common.h"

namespace stow {
using namespace detail;

namespace {
// Checked before any parallel region: an exception must not leave an OpenMP region.
void check_head(Ctx& c, const int32_t* targets, int64_t N, int64_t C, int64_t V, int64_t rows, int64_t cols) {
  // Debian's OpenBLAS takes 32-bit dimensions.
  if (N > INT_MAX || C > INT_MAX || V > INT_MAX)
    fail(c, "internal: linear_cross_entropy dimensions " + std::to_string(N) + "x" + std::to_string(V) + "x" +
                std::to_string(C) + " exceed the BLAS limit");
  if (rows < 1 || cols < 1)
    fail(c, "internal: linear_cross_entropy tile " + std::to_string(rows) + " x " + std::to_string(cols));
  for (int64_t n = 0; n < N; n++)
    if (targets[n] < 0 || targets[n] >= V)
      fail(c, "linear_cross_entropy: target " + std::to_string(targets[n]) + " at row " + std::to_string(n) +
                  " is outside the vocabulary of " + std::to_string(V));
}

// The units of columns and rows the sums run over (LM_HEAD_COL_UNIT and LM_HEAD_ROW_UNIT in
// ir/passes/fuse_lm_head.ts).
constexpr int64_t kColUnit = 256, kRowUnit = 128;

// A tile's extent used: whole units when it holds one, so tiles start on unit boundaries.
int64_t whole_units(int64_t n, int64_t unit) { return n >= unit ? n / unit * unit : n; }

// Where the logits' tile [r0, r0 + nr) x [v0, v0 + nc) comes from.
struct Tile {
  int64_t r0, nr, v0, nc;
};

// tile[r, j] = x[r0 + r] . W's row (or column) v0 + j, stored [nr, nc]: one product per block of a row
// unit by a column unit, so each logit comes from a product of the same shape whatever the tile (BLAS
// results may depend on the shape).
void logits_tile(float* tile, const float* x, const float* w, int64_t C, int64_t V, bool w_vc, const Tile& t) {
  for (int64_t q0 = 0; q0 < t.nr; q0 += kRowUnit)
    for (int64_t u0 = 0; u0 < t.nc; u0 += kColUnit) {
      const int64_t qn = std::min(kRowUnit, t.nr - q0), un = std::min(kColUnit, t.nc - u0), v = t.v0 + u0;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, w_vc ? CblasTrans : CblasNoTrans, int(qn), int(un), int(C), 1.0f,
                  x + (t.r0 + q0) * C, int(C), w_vc ? w + v * C : w + v, int(w_vc ? C : V), 0.0f, tile + q0 * t.nc + u0,
                  int(t.nc));
    }
}
}  // namespace

void linear_cross_entropy_fwd(Ctx& c, float* loss, float* lse, const float* x, const float* w, const int32_t* targets,
                              int64_t N, int64_t C, int64_t V, bool w_vc, int64_t rows, int64_t cols) {
  check_head(c, targets, N, C, V, rows, cols);
  c.touch(loss, 4);
  c.touch(lse, N * 4);
  float* tile = static_cast<float*>(c.workspace((rows * cols + 2 * rows) * 4));
  float* sum = tile + rows * cols;    // each row's sum of exp(logit - running max)
  float* target_logit = sum + rows;  // found in whichever tile holds the target's column
  rows = whole_units(rows, kRowUnit);
  cols = whole_units(cols, kColUnit);
  // Row losses are added in row order, in double, whatever the thread count.
  double total = 0.0;
  for (int64_t r0 = 0; r0 < N; r0 += rows) {
    const int64_t nr = std::min(rows, N - r0);
    float* running_max = lse + r0;  // becomes the log-sum-exp after the row's last tile
    for (int64_t r = 0; r < nr; r++) running_max[r] = -INFINITY, sum[r] = 0.0f;
    for (int64_t v0 = 0; v0 < V; v0 += cols) {
      const Tile t{r0, nr, v0, std::min(cols, V - v0)};
      logits_tile(tile, x, w, C, V, w_vc, t);
#pragma omp parallel for schedule(static) num_threads(c.threads)
      for (int64_t r = 0; r < nr; r++) {
        // One column unit at a time, in order: the same sums whatever the tile's width.
        for (int64_t u0 = 0; u0 < t.nc; u0 += kColUnit) {
          const float* unit = tile + r * t.nc + u0;
          const int64_t un = std::min(kColUnit, t.nc - u0);
          const float mx = std::max(running_max[r], row_max(unit, un));
          // Rescale the sum so far to the new max (exp(-inf) = 0 before the first unit).
          sum[r] = math::rescaled_sum(sum[r], running_max[r], mx) + lane_sum<float>(un, [&](int64_t j) { return vexp(unit[j] - mx); });
          running_max[r] = mx;
        }
        const float* row = tile + r * t.nc;
        const int64_t target = targets[r0 + r] - v0;
        if (target >= 0 && target < t.nc) target_logit[r] = row[target];
      }
    }
    for (int64_t r = 0; r < nr; r++) {
      lse[r0 + r] = math::log_sum_exp(running_max[r], sum[r]);
      total += double(lse[r0 + r]) - double(target_logit[r]);
    }
  }
  loss[0] = N > 0 ? float(total / double(N)) : 0.0f;
}

void linear_cross_entropy_bwd(Ctx& c, float* dx, float* dw, const float* x, const float* w, const int32_t* targets,
                              const float* lse, const float* dloss, int64_t N, int64_t C, int64_t V, bool w_vc,
                              int64_t rows, int64_t cols) {
  check_head(c, targets, N, C, V, rows, cols);
  c.touch(dx, N * C * 4);
  c.touch(dw, V * C * 4);
  float* tile = static_cast<float*>(c.workspace(rows * cols * 4));
  if (N == 0) {  // no rows to accumulate: dW is zero
    fill(c, dw, V * C, 0.0f);
    return;
  }
  rows = whole_units(rows, kRowUnit);
  cols = whole_units(cols, kColUnit);
  const float f = dloss[0] / float(N);
  // Vocabulary tiles outermost: with all rows in one tile (the usual case), each slice of dW is
  // finished before the next tile's.
  for (int64_t v0 = 0; v0 < V; v0 += cols) {
    for (int64_t r0 = 0; r0 < N; r0 += rows) {
      const Tile t{r0, std::min(rows, N - r0), v0, std::min(cols, V - v0)};
      logits_tile(tile, x, w, C, V, w_vc, t);
#pragma omp parallel for schedule(static) num_threads(c.threads)
      for (int64_t r = 0; r < t.nr; r++) {
        float* row = tile + r * t.nc;
        const float row_lse = lse[r0 + r];
        const int64_t target = targets[r0 + r] - v0;
        const bool has_target = target >= 0 && target < t.nc;
        const float target_p = has_target ? vexp(row[target] - row_lse) : 0.0f;
        for (int64_t j = 0; j < t.nc; j++) row[j] = math::cross_entropy_grad(vexp(row[j] - row_lse), false, f);
        if (has_target) row[target] = math::cross_entropy_grad(target_p, true, f);
      }
      const int ld_w = int(w_vc ? C : V);
      // dx's rows (+)= dlogits W's slice, and dW's slice (+)= dlogitsᵀ x in W's layout (rows v0.. of
      // [V, C], or columns v0.. of [C, V]): one product per block of a row unit by a column unit, so each
      // sum runs over units in order with products of the same shape whatever the tile. dx first: when all
      // rows are one tile, dW may be written over W (ops.ts), and these are the slice's last reads.
      for (int64_t q0 = 0; q0 < t.nr; q0 += kRowUnit)
        for (int64_t u0 = 0; u0 < t.nc; u0 += kColUnit) {
          const int64_t qn = std::min(kRowUnit, t.nr - q0), un = std::min(kColUnit, t.nc - u0), v = v0 + u0;
          cblas_sgemm(CblasRowMajor, CblasNoTrans, w_vc ? CblasNoTrans : CblasTrans, int(qn), int(C), int(un), 1.0f,
                      tile + q0 * t.nc + u0, int(t.nc), w_vc ? w + v * C : w + v, ld_w, v == 0 ? 0.0f : 1.0f,
                      dx + (r0 + q0) * C, int(C));
        }
      for (int64_t u0 = 0; u0 < t.nc; u0 += kColUnit)
        for (int64_t q0 = 0; q0 < t.nr; q0 += kRowUnit) {
          const int64_t qn = std::min(kRowUnit, t.nr - q0), un = std::min(kColUnit, t.nc - u0), v = v0 + u0, q = r0 + q0;
          const float beta_w = q == 0 ? 0.0f : 1.0f;
          const float* dlogits = tile + q0 * t.nc + u0;
          if (w_vc)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(un), int(C), int(qn), 1.0f, dlogits, int(t.nc),
                        x + q * C, int(C), beta_w, dw + v * C, ld_w);
          else
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(C), int(un), int(qn), 1.0f, x + q * C, int(C),
                        dlogits, int(t.nc), beta_w, dw + v, ld_w);
        }
    }
  }
}

}  // namespace stow
