// Mean cross-entropy over rows of logits, forward and backward.
#include <vector>

#include "kernels.h"
#include "kernels_common.h"

namespace stow {
using namespace detail;

namespace {
// Checked before any parallel region: an exception must not leave an OpenMP region.
void check_targets(Ctx& c, const int32_t* targets, int64_t N, int64_t V) {
  for (int64_t n = 0; n < N; n++)
    if (targets[n] < 0 || targets[n] >= V)
      fail(c, "cross_entropy: target " + std::to_string(targets[n]) + " at row " + std::to_string(n) +
                  " is outside the vocabulary of " + std::to_string(V));
}

// A row's max and sum of exp(x - max), so that log-sum-exp = max + log(sum) never overflows.
struct Softmax {
  float max, sum;
};
Softmax row_softmax(const float* x, int64_t V) {
  const float mx = row_max(x, V);
  return {mx, lane_sum<float>(V, [&](int64_t i) { return vexp(x[i] - mx); })};
}
}  // namespace

// Row losses are summed in double: each thread sums its contiguous rows in order, then the thread
// sums are added in thread order (fixed for a given thread count).
void cross_entropy_fwd(Ctx& c, float* loss, const float* logits, const int32_t* targets, int64_t N, int64_t V) {
  check_targets(c, targets, N, V);
  c.touch(loss, 4);
  std::vector<double> partial(c.threads, 0.0);
#pragma omp parallel num_threads(c.threads)
  {
    const Span rows = thread_span(N);
    double acc = 0.0;
    for (int64_t n = rows.begin; n < rows.end; n++) {
      const float* x = logits + n * V;
      const Softmax s = row_softmax(x, V);
      acc += double(math::row_loss(s.max, x[targets[n]], s.sum));
    }
    partial[omp_get_thread_num()] = acc;
  }
  double total = 0.0;
  for (double p : partial) total += p;
  loss[0] = N > 0 ? float(total / double(N)) : 0.0f;
}

void cross_entropy_bwd(Ctx& c, float* dlogits, const float* logits, const int32_t* targets, const float* dloss,
                       int64_t N, int64_t V) {
  check_targets(c, targets, N, V);
  c.touch(dlogits, N * V * 4);
  const float f = dloss[0] / float(N);
#pragma omp parallel for schedule(static) num_threads(c.threads)
  for (int64_t n = 0; n < N; n++) {
    const float* x = logits + n * V;
    float* d = dlogits + n * V;
    const Softmax s = row_softmax(x, V);
    const float inv = 1.0f / s.sum;
    // Read the target logit first: the plan may place dlogits over logits (in-place reuse).
    const float target_p = vexp(x[targets[n]] - s.max) * inv;
    for (int64_t i = 0; i < V; i++) d[i] = math::cross_entropy_grad(vexp(x[i] - s.max) * inv, false, f);
    d[targets[n]] = math::cross_entropy_grad(target_p, true, f);
  }
}

}  // namespace stow
