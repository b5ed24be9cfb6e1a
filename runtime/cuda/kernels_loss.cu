// Mean cross-entropy over rows of logits, one block per row: the row's max, then its sum of
// exp(x - max), each a block reduction in a fixed order.
#include "launch.h"

namespace stow::cuda {
namespace {

struct Softmax {
  float max, sum;
};

__device__ Softmax row_softmax(const float* x, int64_t V, float* shared) {
  float mx = -INFINITY;
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) mx = math::max_f(mx, x[i]);
  mx = block_reduce<true>(mx, shared);
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) sum += math::vexp(x[i] - mx);
  return {mx, block_reduce<false>(sum, shared)};
}

// row_losses[n] = log-sum-exp of row n minus its target logit.
__global__ void row_losses_kernel(float* row_losses, const float* logits, const int32_t* targets, int64_t V) {
  __shared__ float shared[32];
  const int64_t n = blockIdx.x;
  const float* x = logits + n * V;
  const Softmax s = row_softmax(x, V, shared);
  if (threadIdx.x == 0) row_losses[n] = math::row_loss(s.max, x[targets[n]], s.sum);
}

// Every thread reads its logits before any is overwritten: the reductions end in a barrier, and each
// thread then writes only the elements it reads (the plan may place dlogits over logits).
__global__ void cross_entropy_bwd_kernel(float* dlogits, const float* logits, const int32_t* targets,
                                         const float* dloss, int64_t N, int64_t V) {
  __shared__ float shared[32];
  const int64_t n = blockIdx.x;
  const float* x = logits + n * V;
  float* d = dlogits + n * V;
  const Softmax s = row_softmax(x, V, shared);
  const float inv = 1.0f / s.sum, f = dloss[0] / float(N);
  const int64_t t = targets[n];
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x)
    d[i] = math::cross_entropy_grad(math::vexp(x[i] - s.max) * inv, i == t, f);
}

// Target ids are checked by the data loader before they reach the device.
void check_rows(const Ctx& c, int64_t N) {
  if (N > int64_t(INT32_MAX)) throw Error(std::string("internal: cross_entropy over more than 2^31 rows (node ") + c.node + ")");
}

}  // namespace

void cross_entropy_fwd(Ctx& c, float* loss, const float* logits, const int32_t* targets, int64_t N, int64_t V) {
  check_rows(c, N);
  c.touch(loss, 4);
  float* row_loss = static_cast<float*>(runtime(c).scratch(N * 4));
  if (N > 0) {
    STOW_LAUNCH(row_losses_kernel, unsigned(N), kBlock, runtime(c).compute())(row_loss, logits, targets, V);
    check_launch(c, "cross_entropy_fwd rows");
  }
  STOW_LAUNCH(mean_loss_kernel, 1, kBlock, runtime(c).compute())(loss, N, [=] __device__(int64_t n) { return row_loss[n]; });
  check_launch(c, "cross_entropy_fwd mean");
}

void cross_entropy_bwd(Ctx& c, float* dlogits, const float* logits, const int32_t* targets, const float* dloss,
                       int64_t N, int64_t V) {
  check_rows(c, N);
  c.touch(dlogits, N * V * 4);
  if (N <= 0) return;
  STOW_LAUNCH(cross_entropy_bwd_kernel, unsigned(N), kBlock, runtime(c).compute())(dlogits, logits, targets, dloss, N, V);
  check_launch(c, "cross_entropy_bwd");
}

}  // namespace stow::cuda
