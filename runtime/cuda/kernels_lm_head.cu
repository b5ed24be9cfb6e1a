// The LM head fused with the mean cross-entropy, as runtime/cpu/kernels_lm_head.cpp does it on the CPU: the
// logits [N, V] exist one tile at a time in the planned workspace, written by a cuBLAS product, and the
// loss (or its gradient) is taken from the tile at once. The forward folds each tile into every row's
// running max and sum of exp (an online softmax); the backward recomputes the tile, turns it into
// dlogits in place and feeds the two products for dx and dW's slice. The formulas are kernel_math.h's.
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

// Where the logits' tile [r0, r0 + nr) x [v0, v0 + nc) comes from.
struct Tile {
  int64_t r0, nr, v0, nc;
};

// W's slice for the tile's columns as the right operand of x W: rows v0.. of W [V, C] used transposed,
// or columns v0.. of W [C, V].
GemmOperand w_slice(const float* w, int64_t C, int64_t V, bool w_vc, const Tile& t) {
  return w_vc ? GemmOperand{w + t.v0 * C, C, true} : GemmOperand{w + t.v0, V, false};
}

// tile[r, j] = x[r0 + r] . W's row (or column) v0 + j, stored [nr, nc].
void logits_tile(const Ctx& c, float* tile, const float* x, const float* w, int64_t C, int64_t V, bool w_vc, const Tile& t,
                 Precision precision) {
  gemm(c, tile, t.nc, {x + t.r0 * C, C, false}, w_slice(w, C, V, w_vc, t), t.nr, t.nc, C, 0.0f, precision);
}

// One block per row of a tile: the row's running max (kept in lse until the last tile) and its sum of
// exp(logit - max) take in the tile's logits, and the target's logit is picked out when this tile holds it.
__global__ void fold_tile_kernel(float* running_max, float* sum, float* target_logit, const float* tile,
                                 const int32_t* targets, int64_t nc, int64_t v0, bool first) {
  __shared__ float shared[32];
  const int64_t r = blockIdx.x;
  const float* row = tile + r * nc;
  float tile_max = -INFINITY;
  for (int64_t j = threadIdx.x; j < nc; j += blockDim.x) tile_max = math::max_f(tile_max, row[j]);
  tile_max = block_reduce<true>(tile_max, shared);
  const float old_max = first ? -INFINITY : running_max[r];
  const float mx = math::max_f(old_max, tile_max);
  float tile_sum = 0.0f;
  for (int64_t j = threadIdx.x; j < nc; j += blockDim.x) tile_sum += math::vexp(row[j] - mx);
  tile_sum = block_reduce<false>(tile_sum, shared);
  if (threadIdx.x == 0) {
    sum[r] = (first ? 0.0f : math::rescaled_sum(sum[r], old_max, mx)) + tile_sum;
    running_max[r] = mx;
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
      // dx's rows (+)= dlogits W's slice: W's slice is [nc, C], or the transpose of W's [C, nc] columns.
      const GemmOperand w_part = w_vc ? GemmOperand{w + v0 * C, C, false} : GemmOperand{w + v0, V, true};
      gemm(c, dx + r0 * C, C, {tile, nc, false}, w_part, t.nr, C, nc, v0 == 0 ? 0.0f : 1.0f, precision);
      // dW's slice (+)= dlogitsᵀ x, in W's layout: rows v0.. of [V, C], or columns v0.. of [C, V].
      const float beta_w = r0 == 0 ? 0.0f : 1.0f;
      if (w_vc)
        gemm(c, dw + v0 * C, C, {tile, nc, true}, {x + r0 * C, C, false}, nc, C, t.nr, beta_w, precision);
      else
        gemm(c, dw + v0, V, {x + r0 * C, C, true}, {tile, nc, false}, C, nc, t.nr, beta_w, precision);
    }
  }
}

}  // namespace stow::cuda
