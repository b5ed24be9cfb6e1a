// The optimizer step: global gradient norm (for clipping) and AdamW.
#include <vector>

#include "kernels.h"
#include "kernels_common.h"

namespace stow {
using namespace detail;

// Each thread takes the same contiguous share of every tensor and sums squares in double, tensors in
// order; the thread sums are then added in thread order (fixed for a given thread count).
double detail::sum_of_squares(const Ctx& c, const float* const* grads, const int64_t* sizes, int64_t count) {
  std::vector<double> partial(c.threads, 0.0);
#pragma omp parallel num_threads(c.threads)
  {
    double acc = 0.0;
    for (int64_t t = 0; t < count; t++) {
      const Span span = thread_span(sizes[t]);
      const float* g = grads[t] + span.begin;
      acc += lane_sum<double>(span.end - span.begin, [&](int64_t i) {
        const double x = g[i];
        return x * x;
      });
    }
    partial[omp_get_thread_num()] = acc;
  }
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

void grad_norm(Ctx& c, float* out, const float* const* grads, const int64_t* sizes, int64_t count) {
  c.touch(out, 4);
  const double total = sum_of_squares(c, grads, sizes, count);
  out[0] = float(std::sqrt(total));
}

// Follows torch.optim.AdamW's single-tensor step operation by operation (kernel_math.h): scalars in
// double as Python computes them, then rounded to float for the tensor ops.
void adamw(Ctx& c, float* p, const float* g, float* m, float* v, int64_t n, const AdamHyper& h, float gscale,
           bool decay) {
  c.touch(p, n * 4);
  c.touch(m, n * 4);
  c.touch(v, n * 4);
  const math::AdamScalars s = math::adam_scalars(h.lr, h.beta1, h.beta2, h.eps, h.weight_decay, h.t, decay);
#pragma omp parallel for schedule(static) num_threads(c.threads)
  for (int64_t i = 0; i < n; i++) math::adamw_element(p[i], g[i], m[i], v[i], gscale, s);
}

}  // namespace stow
