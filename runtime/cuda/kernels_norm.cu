// LayerNorm over the last axis, one warp per row: the row statistics are two passes (mean, then the
// mean square deviation), as on the CPU, with the lanes' partial sums added in a fixed order.
#include "launch.h"

namespace stow::cuda {
namespace {

constexpr int kRowsPerBlock = kBlock / 32;

struct RowStats {
  float mean, rstd;
};

__device__ RowStats row_stats(const float* x, int64_t C, float eps, int lane) {
  float sum = 0.0f;
  for (int64_t i = lane; i < C; i += 32) sum += x[i];
  const float mean = warp_sum(sum) / float(C);
  float sq = 0.0f;
  for (int64_t i = lane; i < C; i += 32) {
    const float d = x[i] - mean;
    sq += d * d;
  }
  const float var = warp_sum(sq) / float(C);
  return {mean, 1.0f / sqrtf(var + eps)};
}

__global__ void layernorm_fwd_kernel(float* y, const float* x, const float* w, const float* b, int64_t rows, int64_t C,
                                     float eps) {
  const int64_t row = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;  // the whole warp: a warp is one row
  const float* xr = x + row * C;
  float* yr = y + row * C;
  const RowStats s = row_stats(xr, C, eps, lane);
  for (int64_t i = lane; i < C; i += 32) {
    const float scaled = math::normalized(xr[i], s.mean, s.rstd) * w[i];
    yr[i] = b != nullptr ? scaled + b[i] : scaled;
  }
}

// dx per row, and each row's statistics kept in `stats` for the column sums of dw and db.
__global__ void layernorm_dx_kernel(float* dx, float* stats, const float* x, const float* w, const float* dy,
                                    int64_t rows, int64_t C, float eps) {
  const int64_t row = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const float* xr = x + row * C;
  const float* dyr = dy + row * C;
  const RowStats s = row_stats(xr, C, eps, lane);
  if (lane == 0) {
    stats[2 * row] = s.mean;
    stats[2 * row + 1] = s.rstd;
  }
  float g = 0.0f, gx = 0.0f;
  for (int64_t i = lane; i < C; i += 32) {
    const float dy_w = dyr[i] * w[i];
    g += dy_w;
    gx += dy_w * math::normalized(xr[i], s.mean, s.rstd);
  }
  const float g_mean = warp_sum(g) / float(C), gx_mean = warp_sum(gx) / float(C);
  float* dxr = dx + row * C;
  for (int64_t i = lane; i < C; i += 32)
    dxr[i] = math::layernorm_dx(dyr[i] * w[i], math::normalized(xr[i], s.mean, s.rstd), s.rstd, g_mean, gx_mean);
}

unsigned row_blocks(int64_t rows) { return unsigned((rows + kRowsPerBlock - 1) / kRowsPerBlock); }

}  // namespace

void layernorm_fwd(Ctx& c, float* y, const float* x, const float* w, const float* b, int64_t rows, int64_t C, float eps) {
  c.touch(y, rows * C * 4);
  if (rows <= 0) return;
  STOW_LAUNCH(layernorm_fwd_kernel, row_blocks(rows), kBlock, runtime(c).compute())(y, x, w, b, rows, C, eps);
  check_launch(c, "layernorm_fwd");
}

// Workspace: rows * 2 floats (mean and rstd), as the plan reserves for the CPU kernel.
void layernorm_bwd(Ctx& c, float* dx, float* dw, float* db, const float* x, const float* w, const float* dy,
                   int64_t rows, int64_t C, float eps) {
  float* stats = static_cast<float*>(c.workspace(rows * 2 * 4));
  c.touch(dx, rows * C * 4);
  c.touch(dw, C * 4);
  if (db) c.touch(db, C * 4);
  if (rows > 0) {
    STOW_LAUNCH(layernorm_dx_kernel, row_blocks(rows), kBlock, runtime(c).compute())(dx, stats, x, w, dy, rows, C, eps);
    check_launch(c, "layernorm_bwd");
  }
  // With no rows, dw and db are empty sums: zeros, as on the CPU.
  column_sums(c, "layernorm_bwd dw", dw, rows, C, [=] __device__(int64_t r, int64_t col) {
    return dy[r * C + col] * math::normalized(x[r * C + col], stats[2 * r], stats[2 * r + 1]);
  });
  if (db) column_sums(c, "layernorm_bwd db", db, rows, C, [=] __device__(int64_t r, int64_t col) { return dy[r * C + col]; });
}

}  // namespace stow::cuda
