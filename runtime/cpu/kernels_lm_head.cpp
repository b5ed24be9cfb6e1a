// The LM head fused with the mean cross-entropy (linear_cross_entropy and its backward). The logits
// [N, V] exist one tile at a time: an sgemm writes a tile into the workspace and the loss (or its
// gradient) is taken from it at once, so the step never holds N x V floats.
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

// Where the logits' tile [r0, r0 + nr) x [v0, v0 + nc) comes from.
struct Tile {
  int64_t r0, nr, v0, nc;
};

// tile[r, j] = x[r0 + r] . W's row (or column) v0 + j, stored [nr, nc].
void logits_tile(float* tile, const float* x, const float* w, int64_t C, int64_t V, bool w_vc, const Tile& t) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, w_vc ? CblasTrans : CblasNoTrans, int(t.nr), int(t.nc), int(C), 1.0f,
              x + t.r0 * C, int(C), w_vc ? w + t.v0 * C : w + t.v0, int(w_vc ? C : V), 0.0f, tile, int(t.nc));
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
        const float* row = tile + r * t.nc;
        const float mx = std::max(running_max[r], row_max(row, t.nc));
        // Rescale the sum so far to the new max (exp(-inf) = 0 before the first tile).
        sum[r] = math::rescaled_sum(sum[r], running_max[r], mx) + lane_sum<float>(t.nc, [&](int64_t j) { return vexp(row[j] - mx); });
        running_max[r] = mx;
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
  const float f = dloss[0] / float(N);
  // Vocabulary tiles outermost: with all rows in one tile (the usual case), each slice of dW is
  // written once, by one sgemm with K = N.
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
      // dx's rows (+)= dlogits W's slice. First: when all rows are one tile, dW may be written over W
      // (ops.ts), and this is the slice's last read.
      cblas_sgemm(CblasRowMajor, CblasNoTrans, w_vc ? CblasNoTrans : CblasTrans, int(t.nr), int(C), int(t.nc), 1.0f,
                  tile, int(t.nc), w_vc ? w + v0 * C : w + v0, ld_w, v0 == 0 ? 0.0f : 1.0f, dx + r0 * C, int(C));
      // dW's slice (+)= dlogitsᵀ x, in W's layout: rows v0.. of [V, C], or columns v0.. of [C, V].
      const float beta_w = r0 == 0 ? 0.0f : 1.0f;
      if (w_vc)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(t.nc), int(C), int(t.nr), 1.0f, tile, int(t.nc),
                    x + r0 * C, int(C), beta_w, dw + v0 * C, ld_w);
      else
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(C), int(t.nc), int(t.nr), 1.0f, x + r0 * C, int(C),
                    tile, int(t.nc), beta_w, dw + v0, ld_w);
    }
  }
}

}  // namespace stow
