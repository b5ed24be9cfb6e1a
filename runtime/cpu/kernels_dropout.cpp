// Dropout on the CPU: each element's keep bit is kernel_math.h's hash of (seed, step, index), so the
// threads need no shared random state and the result does not depend on how the loop is split.
#include "kernels.h"
#include "kernels_common.h"

namespace stow {

void dropout(Ctx& c, float* y, const float* x, int64_t n, float p, uint32_t seed, int64_t step) {
  c.touch(y, n * 4);
  const float scale = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static) num_threads(c.threads)
  for (int64_t i = 0; i < n; i++) y[i] = math::dropout_keep(seed, step, i, p) ? x[i] * scale : 0.0f;
}

}  // namespace stow
