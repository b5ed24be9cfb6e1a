// The optimizer step: global gradient norm (for clipping) and AdamW.
#include <vector>

#include "kernels.h"
#include "kernels_common.h"

namespace stow {
using namespace detail;

// Each thread takes the same contiguous share of every tensor and sums squares in double, tensors in
// order; the thread sums are then added in thread order (fixed for a given thread count).
void grad_norm(Ctx& c, float* out, const float* const* grads, const int64_t* sizes, int64_t count) {
  c.touch(out, 4);
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
  out[0] = float(std::sqrt(total));
}

// Follows torch.optim.AdamW's single-tensor step operation by operation: scalars (decay factor, bias
// corrections, step size) in double as Python computes them, then rounded to float for the tensor ops.
void adamw(Ctx& c, float* p, const float* g, float* m, float* v, int64_t n, const AdamHyper& h, float gscale,
           bool decay) {
  c.touch(p, n * 4);
  c.touch(m, n * 4);
  c.touch(v, n * 4);
  const double t = double(h.t);
  const float decay_factor = decay ? float(1.0 - double(h.lr) * double(h.weight_decay)) : 1.0f;
  const float beta1 = h.beta1, beta2 = h.beta2, eps = h.eps;
  const float one_minus_beta1 = float(1.0 - double(h.beta1)), one_minus_beta2 = float(1.0 - double(h.beta2));
  const double bias_correction1 = 1.0 - std::pow(double(h.beta1), t);
  const double bias_correction2 = 1.0 - std::pow(double(h.beta2), t);
  const float neg_step_size = float(-(double(h.lr) / bias_correction1));
  const float bias_correction2_sqrt = float(std::sqrt(bias_correction2));
#pragma omp parallel for schedule(static) num_threads(c.threads)
  for (int64_t i = 0; i < n; i++) {
    const float gi = g[i] * gscale;
    const float mi = m[i] * beta1 + one_minus_beta1 * gi;
    const float vi = v[i] * beta2 + one_minus_beta2 * gi * gi;
    const float denom = std::sqrt(vi) / bias_correction2_sqrt + eps;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay_factor + neg_step_size * (mi / denom);
  }
}

}  // namespace stow
