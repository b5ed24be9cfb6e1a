// The kernels PaLM adds: rotary position embeddings and SiLU (for SwiGLU). Multi-query attention and
// the LayerNorm without bias are options of kernels_attention.cpp and kernels_norm.cpp.
#include <cmath>

#include "kernels.h"
#include "kernels_common.h"

namespace stow {
using namespace detail;

// The angles are computed in double and rounded once, so the tables are the correctly rounded cos and
// sin of each angle whatever T is; the tables cost T * D/2 sin/cos pairs, small next to the rows.
void rope(Ctx& c, float* y, const float* x, int64_t rows, int64_t T, int64_t D, float base, bool inverse) {
  const int64_t half = D / 2;
  float* cos_t = static_cast<float*>(c.workspace(T * D * 4));
  float* sin_t = cos_t + T * half;
  c.touch(y, rows * D * 4);
#pragma omp parallel for schedule(static) num_threads(c.threads)
  for (int64_t t = 0; t < T; t++)
    for (int64_t i = 0; i < half; i++) {
      const double angle = double(t) * std::pow(double(base), -2.0 * double(i) / double(D));
      cos_t[t * half + i] = float(std::cos(angle));
      sin_t[t * half + i] = float(inverse ? -std::sin(angle) : std::sin(angle));
    }
  // Each pair is read whole before it is written, so y may be x.
#pragma omp parallel for schedule(static) num_threads(c.threads)
  for (int64_t r = 0; r < rows; r++) {
    const float* cr = cos_t + (r % T) * half;
    const float* sr = sin_t + (r % T) * half;
    const float* xr = x + r * D;
    float* yr = y + r * D;
    for (int64_t i = 0; i < half; i++) {
      const math::Pair turned = math::rotate(xr[i], xr[i + half], cr[i], sr[i]);
      yr[i] = turned.a;
      yr[i + half] = turned.b;
    }
  }
}

void silu_fwd(Ctx& c, float* y, const float* x, int64_t n) {
  c.touch(y, n * 4);
#pragma omp parallel for schedule(static) num_threads(c.threads)
  for (int64_t i = 0; i < n; i++) y[i] = math::silu(x[i]);
}

void silu_bwd(Ctx& c, float* dx, const float* x, const float* dy, int64_t n) {
  c.touch(dx, n * 4);
#pragma omp parallel for schedule(static) num_threads(c.threads)
  for (int64_t i = 0; i < n; i++) dx[i] = math::silu_grad(x[i], dy[i]);
}

}  // namespace stow
