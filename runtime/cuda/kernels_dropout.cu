// Dropout on CUDA: one thread per element, its keep bit kernel_math.h's hash of (seed, step, index), the
// same bit the CPU kernel draws.
#include "launch.h"

namespace stow::cuda {

void dropout(Ctx& c, float* y, const float* x, int64_t n, float p, uint32_t seed, int64_t step) {
  c.touch(y, n * 4);
  const float scale = 1.0f / (1.0f - p);
  for_each(c, "dropout", n, [=] __device__(int64_t i) { y[i] = math::dropout_keep(seed, step, i, p) ? x[i] * scale : 0.0f; });
}

}  // namespace stow::cuda
