// Helpers of the CUDA kernels: element loops over [0, n) from a device lambda, and warp and block
// reductions in a fixed order (so results do not change from run to run).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda_kernels.h"
#include "core/kernel_math.h"
#include "runtime.h"

// A kernel launch both nvcc and g++ (the emulated target, emulate/include/cuda_runtime.h) compile:
// STOW_LAUNCH(kernel, grid, block, stream)(args...) is kernel<<<grid, block, 0, stream>>>(args...).
#ifdef STOW_CUDA_EMULATED
#define STOW_LAUNCH(kernel, grid, block, stream) \
  ::stow::emu::launcher(#kernel, grid, block, 0, stream, [](auto&&... args) { kernel(std::forward<decltype(args)>(args)...); })
#else
#define STOW_LAUNCH(kernel, grid, block, stream) kernel<<<grid, block, 0, stream>>>
#endif

namespace stow::cuda {

// A row-major matrix operand of gemm: its data, the length of its stored rows (which may be longer than
// the rows used: a slice of columns), whether it is used transposed, and for batches the distance
// between consecutive matrices.
struct GemmOperand {
  const float* data;
  int64_t ld;
  bool transposed;
  int64_t stride = 0;
};

// Row-major out[M, N] = op(a)[M, K] op(b)[K, N] + beta out on cuBLAS, queued on the compute stream, for
// `batch` matrices out_stride floats apart. M, N, K must be positive.
void gemm(const Ctx& c, float* out, int64_t ld_out, const GemmOperand& a, const GemmOperand& b, int64_t M, int64_t N,
          int64_t K, float beta, Precision precision, int64_t batch = 1, int64_t out_stride = 0);

// Sum of squares of a gradient in host memory: each of `threads` threads a contiguous share, shares in
// order (kernels_optimizer.cu; d2h_to_disk keeps it for the gradient norm).
double host_sum_squares(const float* g, int64_t n, int threads);

constexpr unsigned kFullWarp = 0xffffffffu;
constexpr int kBlock = 256;

template <class F>
__global__ void for_each_kernel(int64_t n, F f) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) f(i);
}

// Runs f(i) for every i in [0, n) on the compute stream.
template <class F>
void for_each(const Ctx& c, const char* kernel, int64_t n, F f) {
  if (n <= 0) return;
  STOW_LAUNCH(for_each_kernel, grid_for(n, kBlock), kBlock, runtime(c).compute())(n, f);
  check_launch(c, kernel);
}

// out[col] = sum over rows of term(r, col), for col in [0, cols). A block takes 32 columns with 32
// thread-rows: thread-row t sums rows t, t + 32, ... in order, then the 32 partial sums are added in
// order, so the result is the same on every run.
template <class Term>
__global__ void column_sums_kernel(float* out, int64_t rows, int64_t cols, Term term) {
  __shared__ float partial[32][33];
  const int64_t col = int64_t(blockIdx.x) * 32 + threadIdx.x;
  float acc = 0.0f;
  if (col < cols)
    for (int64_t r = threadIdx.y; r < rows; r += 32) acc += term(r, col);
  partial[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && col < cols) {
    float total = 0.0f;
    for (int t = 0; t < 32; t++) total += partial[t][threadIdx.x];
    out[col] = total;
  }
}

template <class Term>
void column_sums(const Ctx& c, const char* kernel, float* out, int64_t rows, int64_t cols, Term term) {
  if (cols <= 0) return;
  STOW_LAUNCH(column_sums_kernel, unsigned((cols + 31) / 32), dim3(32, 32), runtime(c).compute())(out, rows, cols, term);
  check_launch(c, kernel);
}

__device__ inline float warp_sum(float x) {
  for (int offset = 16; offset > 0; offset /= 2) x += __shfl_xor_sync(kFullWarp, x, offset);
  return x;
}

__device__ inline float warp_max(float x) {
  for (int offset = 16; offset > 0; offset /= 2) x = math::max_f(x, __shfl_xor_sync(kFullWarp, x, offset));
  return x;
}

// The sum (or max) of x over the block, returned to every thread. blockDim.x must be a multiple of 32,
// at most 1024; `shared` holds 32 floats.
template <bool kMax>
__device__ inline float block_reduce(float x, float* shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  x = kMax ? warp_max(x) : warp_sum(x);
  __syncthreads();  // shared may still be read by a previous call
  if (lane == 0) shared[warp] = x;
  __syncthreads();
  x = lane < warps ? shared[lane] : (kMax ? -INFINITY : 0.0f);
  return kMax ? warp_max(x) : warp_sum(x);
}

// The sum over the block of each thread's `x`, added by thread 0 in thread order (so the same on every
// run); the result is valid in thread 0 only. `lanes` holds blockDim.x doubles.
__device__ inline double block_sum_in_order(double x, double* lanes) {
  lanes[threadIdx.x] = x;
  __syncthreads();
  double total = 0.0;
  if (threadIdx.x == 0)
    for (int t = 0; t < int(blockDim.x); t++) total += lanes[t];
  return total;
}

// loss[0] = the mean over n < N of row_loss(n), summed in double by one block (lane-strided, then in
// lane order); 0 when N is 0.
template <class RowLoss>
__global__ void mean_loss_kernel(float* loss, int64_t N, RowLoss row_loss) {
  __shared__ double lanes[kBlock];
  double acc = 0.0;
  for (int64_t n = threadIdx.x; n < N; n += blockDim.x) acc += double(row_loss(n));
  const double total = block_sum_in_order(acc, lanes);
  if (threadIdx.x == 0) loss[0] = N > 0 ? float(total / double(N)) : 0.0f;
}

}  // namespace stow::cuda
