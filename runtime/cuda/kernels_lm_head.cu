// The LM head fused with the mean cross-entropy, as runtime/cpu/kernels_lm_head.cpp does it on the CPU: the
// logits [N, V] exist one tile at a time in the planned workspace, written by a cuBLAS product, and the
// loss (or its gradient) is taken from the tile at once. The forward folds each tile into every row's
// running max and sum of exp (an online softmax); the backward recomputes the tile, turns it into
// dlogits in place and feeds the two products for dx and dW's slice. The formulas are kernel_math.h's.
// As on the CPU, the results do not depend on the tile: sums across columns run over fixed units of
// kColUnit columns in unit order, and dW's sum over rows over fixed units of kRowUnit rows.
#include <algorithm>
#include <climits>
#include <string>

#include "launch.h"

namespace stow::cuda {
namespace {

// Target ids are checked by the data loader before they reach the device.
void check_head(const Ctx& c, int64_t N, int64_t C, int64_t V, int64_t rows, int64_t cols) {
  if (N > INT_MAX || C > INT_MAX || V > INT_MAX)
    throw Error("internal: linear_cross_entropy dimensions " + std::to_string(N) + "x" + std::to_string(V) + "x" +
                std::to_string(C) + " exceed cuBLAS's 32-bit limit (node " + c.node + ")");
  if (rows < 1 || cols < 1)
    throw Error("internal: linear_cross_entropy tile " + std::to_string(rows) + " x " + std::to_string(cols) + " (node " +
                c.node + ")");
}

// The units of columns and rows the sums run over (as runtime/cpu/kernels_lm_head.cpp).
constexpr int64_t kColUnit = 256, kRowUnit = 128;

// A tile's extent used: whole units when it holds one, so tiles start on unit boundaries.
int64_t whole_units(int64_t n, int64_t unit) { return n >= unit ? n / unit * unit : n; }

// Where the logits' tile [r0, r0 + nr) x [v0, v0 + nc) comes from.
struct Tile {
  int64_t r0, nr, v0, nc;
};

// W's slice for the tile's columns as the right operand of x W: rows v0.. of W [V, C] used transposed,
// or columns v0.. of W [C, V].
GemmOperand w_slice(const float* w, int64_t C, int64_t V, bool w_vc, const Tile& t) {
  return w_vc ? GemmOperand{w + t.v0 * C, C, true} : GemmOperand{w + t.v0, V, false};
}

// tile[r, j] = x[r0 + r] . W's row (or column) v0 + j, stored [nr, nc]: one product per block of a row
// unit by a column unit, so each logit comes from a product of the same shape whatever the tile.
void logits_tile(const Ctx& c, float* tile, const float* x, const float* w, int64_t C, int64_t V, bool w_vc, const Tile& t,
                 Precision precision) {
  for (int64_t q0 = 0; q0 < t.nr; q0 += kRowUnit)
    for (int64_t u0 = 0; u0 < t.nc; u0 += kColUnit) {
      const Tile b{t.r0 + q0, std::min(kRowUnit, t.nr - q0), t.v0 + u0, std::min(kColUnit, t.nc - u0)};
      gemm(c, tile + q0 * t.nc + u0, t.nc, {x + b.r0 * C, C, false}, w_slice(w, C, V, w_vc, b), b.nr, b.nc, C, 0.0f, precision);
    }
}

// One block per row of a tile: the row's running max (kept in lse until the last tile) and its sum of
// exp(logit - max) take in the tile's logits, and the target's logit is picked out when this tile holds it.
__global__ void fold_tile_kernel(float* running_max, float* sum, float* target_logit, const float* tile,
                                 const int32_t* targets, int64_t nc, int64_t v0, bool first) {
  __shared__ float shared[32];
  const int64_t r = blockIdx.x;
  const float* row = tile + r * nc;
  // One column unit at a time, in order: the same sums whatever the tile's width.
  float cur_max = first ? -INFINITY : running_max[r];
  float cur_sum = first ? 0.0f : sum[r];
  for (int64_t u0 = 0; u0 < nc; u0 += kColUnit) {
    const int64_t un = nc - u0 < kColUnit ? nc - u0 : kColUnit;
    float unit_max = -INFINITY;
    for (int64_t j = threadIdx.x; j < un; j += blockDim.x) unit_max = math::max_f(unit_max, row[u0 + j]);
    unit_max = block_reduce<true>(unit_max, shared);
    const float mx = math::max_f(cur_max, unit_max);
    float unit_sum = 0.0f;
    for (int64_t j = threadIdx.x; j < un; j += blockDim.x) unit_sum += math::vexp(row[u0 + j] - mx);
    unit_sum = block_reduce<false>(unit_sum, shared);
    cur_sum = (first && u0 == 0 ? 0.0f : math::rescaled_sum(cur_sum, cur_max, mx)) + unit_sum;
    cur_max = mx;
  }
  if (threadIdx.x == 0) {
    sum[r] = cur_sum;
    running_max[r] = cur_max;
    const int64_t target = targets[r] - v0;
    if (target >= 0 && target < nc) target_logit[r] = row[target];
  }
}

// After a row tile's last column tile, one block: each row's max becomes its log-sum-exp, and the rows'
// losses are added to the running total in double (lane-strided, then in lane order); loss[0] is the
// mean so far, the step's loss after the last row tile.
__global__ void finish_rows_kernel(float* loss, double* total, float* lse, const float* sum, const float* target_logit,
                                   int64_t nr, int64_t N, bool first) {
  __shared__ double lanes[kBlock];
  double acc = 0.0;
  for (int64_t r = threadIdx.x; r < nr; r += blockDim.x) {
    lse[r] = math::log_sum_exp(lse[r], sum[r]);
    acc += double(lse[r]) - double(target_logit[r]);
  }
  const double tile_total = block_sum_in_order(acc, lanes);
  if (threadIdx.x == 0) {
    total[0] = (first ? 0.0 : total[0]) + tile_total;
    loss[0] = float(total[0] / double(N));
  }
}

}  // namespace

void linear_cross_entropy_fwd(Ctx& c, float* loss, float* lse, const float* x, const float* w, const int32_t* targets,
                              int64_t N, int64_t C, int64_t V, bool w_vc, int64_t rows, int64_t cols, Precision precision) {
  check_head(c, N, C, V, rows, cols);
  c.touch(loss, 4);
  c.touch(lse, N * 4);
  float* tile = static_cast<float*>(c.workspace((rows * cols + 2 * rows) * 4));
  float* sum = tile + rows * cols;
  float* target_logit = sum + rows;
  if (N == 0) {
    cuda::fill(c, loss, 1, 0.0f);
    return;
  }
  rows = whole_units(rows, kRowUnit);
  cols = whole_units(cols, kColUnit);
  double* total = static_cast<double*>(runtime(c).scratch(sizeof(double)));
  cudaStream_t stream = runtime(c).compute();
  for (int64_t r0 = 0; r0 < N; r0 += rows) {
    const int64_t nr = std::min(rows, N - r0);
    for (int64_t v0 = 0; v0 < V; v0 += cols) {
      const Tile t{r0, nr, v0, std::min(cols, V - v0)};
      logits_tile(c, tile, x, w, C, V, w_vc, t, precision);
      STOW_LAUNCH(fold_tile_kernel, unsigned(nr), kBlock, stream)(lse + r0, sum, target_logit, tile, targets + r0, t.nc, v0, v0 == 0);
      check_launch(c, "linear_cross_entropy_fwd tile");
    }
    STOW_LAUNCH(finish_rows_kernel, 1, kBlock, stream)(loss, total, lse + r0, sum, target_logit, nr, N, r0 == 0);
    check_launch(c, "linear_cross_entropy_fwd rows");
  }
}

void linear_cross_entropy_bwd(Ctx& c, float* dx, float* dw, const float* x, const float* w, const int32_t* targets,
                              const float* lse, const float* dloss, int64_t N, int64_t C, int64_t V, bool w_vc,
                              int64_t rows, int64_t cols, Precision precision) {
  check_head(c, N, C, V, rows, cols);
  c.touch(dx, N * C * 4);
  c.touch(dw, V * C * 4);
  float* tile = static_cast<float*>(c.workspace(rows * cols * 4));
  if (N == 0) {  // no rows to accumulate: dW is zero
    cuda::fill(c, dw, V * C, 0.0f);
    return;
  }
  rows = whole_units(rows, kRowUnit);
  cols = whole_units(cols, kColUnit);
  // Vocabulary tiles outermost, as on the CPU: with all rows in one tile, each slice of dW is written
  // once, after the last read of W's slice (dW may be placed over W).
  for (int64_t v0 = 0; v0 < V; v0 += cols) {
    for (int64_t r0 = 0; r0 < N; r0 += rows) {
      const Tile t{r0, std::min(rows, N - r0), v0, std::min(cols, V - v0)};
      logits_tile(c, tile, x, w, C, V, w_vc, t, precision);
      const int64_t nc = t.nc;
      const int32_t* row_targets = targets + r0;
      const float* row_lse = lse + r0;
      for_each(c, "linear_cross_entropy_bwd dlogits", t.nr * nc, [=] __device__(int64_t i) {
        const int64_t r = i / nc, j = i % nc;
        tile[i] = math::cross_entropy_grad(math::vexp(tile[i] - row_lse[r]), row_targets[r] - v0 == j, dloss[0] / float(N));
      });
      // dx's rows (+)= dlogits W's slice (W's unit is [un, C], or the transpose of W's [C, un] columns), and
      // dW's slice (+)= dlogitsᵀ x in W's layout (rows v0.. of [V, C], or columns v0.. of [C, V]): one
      // product per block of a row unit by a column unit, so each sum runs over units in order with
      // products of the same shape whatever the tile.
      for (int64_t q0 = 0; q0 < t.nr; q0 += kRowUnit)
        for (int64_t u0 = 0; u0 < nc; u0 += kColUnit) {
          const int64_t qn = std::min(kRowUnit, t.nr - q0), un = std::min(kColUnit, nc - u0), v = v0 + u0;
          const GemmOperand w_part = w_vc ? GemmOperand{w + v * C, C, false} : GemmOperand{w + v, V, true};
          gemm(c, dx + (r0 + q0) * C, C, {tile + q0 * nc + u0, nc, false}, w_part, qn, C, un, v == 0 ? 0.0f : 1.0f,
               precision);
        }
      for (int64_t u0 = 0; u0 < nc; u0 += kColUnit)
        for (int64_t q0 = 0; q0 < t.nr; q0 += kRowUnit) {
          const int64_t qn = std::min(kRowUnit, t.nr - q0), un = std::min(kColUnit, nc - u0), v = v0 + u0, q = r0 + q0;
          const float beta_w = q == 0 ? 0.0f : 1.0f;
          const float* dlogits = tile + q0 * nc + u0;
          if (w_vc)
            gemm(c, dw + v * C, C, {dlogits, nc, true}, {x + q * C, C, false}, un, C, qn, beta_w, precision);
          else
            gemm(c, dw + v, V, {x + q * C, C, true}, {dlogits, nc, false}, C, un, qn, beta_w, precision);
        }
    }
  }
}

}  // namespace stow::cuda
