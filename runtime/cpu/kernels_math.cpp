// Elementwise math and last-axis reductions: the `unary`, `binary` and `reduce` ops and their
// gradients. The formulas are kernel_math.h's (shared with CUDA); each function number gets its own
// instantiation of the loop, so the switch in the formula folds away and the loop is a plain sweep.
#include <string>
#include <type_traits>

#include "kernels.h"
#include "kernels_common.h"

namespace stow {
using namespace detail;

namespace {

// Calls body(std::integral_constant<int32_t, F>) for the F equal to fn (0 <= fn < count).
template <int32_t F, int32_t kCount, class Body>
void with_fn(int32_t fn, Body&& body) {
  if constexpr (F < kCount) {
    if (fn == F) return body(std::integral_constant<int32_t, F>{});
    with_fn<F + 1, kCount>(fn, body);
  }
}

void check_fn(Ctx& c, const char* name, int32_t fn, int32_t count) {
  if (fn < 0 || fn >= count) fail(c, std::string("internal: ") + name + " has no function " + std::to_string(fn));
}

}  // namespace

void unary(Ctx& c, float* y, const float* x, int64_t n, int32_t fn, float p) {
  check_fn(c, "unary", fn, math::kPow + 1);
  c.touch(y, n * 4);
  with_fn<0, math::kPow + 1>(fn, [&](auto F) {
#pragma omp parallel for schedule(static) num_threads(c.threads)
    for (int64_t i = 0; i < n; i++) y[i] = math::unary(F, x[i], p);
  });
}

void unary_bwd(Ctx& c, float* dx, const float* x, const float* dy, int64_t n, int32_t fn, float p) {
  check_fn(c, "unary_bwd", fn, math::kPow + 1);
  c.touch(dx, n * 4);
  with_fn<0, math::kPow + 1>(fn, [&](auto F) {
#pragma omp parallel for schedule(static) num_threads(c.threads)
    for (int64_t i = 0; i < n; i++) dx[i] = math::unary_grad(F, x[i], p, dy[i]);
  });
}

static void check_broadcast(Ctx& c, const char* name, int64_t n, int64_t inner, int64_t nb) {
  if (nb <= 0 || inner <= 0 || n % (nb * inner) != 0)
    fail(c, std::string("internal: ") + name + " of " + std::to_string(n) + " elements cannot broadcast " +
                std::to_string(nb));
}

// Row r of `inner` elements pairs with b[r % nb] when inner > 1, row r of nb elements with b when
// inner == 1: either way the inner loop is a plain sweep.
void binary(Ctx& c, float* out, const float* a, const float* b, int64_t n, int64_t inner, int64_t nb, int32_t fn) {
  check_fn(c, "binary", fn, math::kBinaryCount);
  check_broadcast(c, "binary", n, inner, nb);
  c.touch(out, n * 4);
  with_fn<0, math::kBinaryCount>(fn, [&](auto F) {
    if (inner == 1) {
#pragma omp parallel for schedule(static) num_threads(c.threads)
      for (int64_t r = 0; r < n / nb; r++)
        for (int64_t j = 0; j < nb; j++) out[r * nb + j] = math::binary(F, a[r * nb + j], b[j]);
    } else {
#pragma omp parallel for schedule(static) num_threads(c.threads)
      for (int64_t r = 0; r < n / inner; r++) {
        const float br = b[r % nb];
        for (int64_t j = 0; j < inner; j++) out[r * inner + j] = math::binary(F, a[r * inner + j], br);
      }
    }
  });
}

void binary_bwd(Ctx& c, float* d, const float* a, const float* b, const float* dy, int64_t n, int64_t inner, int64_t nb,
                int32_t fn, int32_t side) {
  check_fn(c, "binary_bwd", fn, math::kBinaryCount);
  check_broadcast(c, "binary_bwd", n, inner, nb);
  c.touch(d, n * 4);
  with_fn<0, math::kBinaryCount>(fn, [&](auto F) {
#pragma omp parallel for schedule(static) num_threads(c.threads)
    for (int64_t i = 0; i < n; i++) d[i] = math::binary_grad(F, side, a[i], b[(i / inner) % nb], dy[i]);
  });
}

void reduce_last(Ctx& c, float* y, const float* x, int64_t rows, int64_t C, int32_t fn) {
  check_fn(c, "reduce_last", fn, math::kMax + 1);
  c.touch(y, rows * 4);
#pragma omp parallel for schedule(static) num_threads(c.threads)
  for (int64_t r = 0; r < rows; r++) y[r] = math::reduce_row(fn, x + r * C, C);
}

void reduce_last_bwd(Ctx& c, float* dx, const float* x, const float* y, const float* dy, int64_t rows, int64_t C,
                     int32_t fn) {
  check_fn(c, "reduce_last_bwd", fn, math::kMax + 1);
  if (fn == math::kMax && (x == nullptr || y == nullptr)) fail(c, "internal: reduce_last_bwd of max needs x and y");
  c.touch(dx, rows * C * 4);
#pragma omp parallel for schedule(static) num_threads(c.threads)
  for (int64_t r = 0; r < rows; r++)
    math::reduce_row_grad(fn, dx + r * C, x ? x + r * C : nullptr, y ? y[r] : 0.0f, dy[r], C);
}

void where(Ctx& c, float* out, const float* cond, const float* a, const float* b, int64_t n, int64_t inner_c, int64_t nc,
           int64_t inner_a, int64_t na, int64_t inner_b, int64_t nb) {
  check_broadcast(c, "where", n, inner_c, nc);
  check_broadcast(c, "where", n, inner_a, na);
  check_broadcast(c, "where", n, inner_b, nb);
  c.touch(out, n * 4);
#pragma omp parallel for schedule(static) num_threads(c.threads)
  for (int64_t i = 0; i < n; i++)
    out[i] = cond[(i / inner_c) % nc] != 0.0f ? a[(i / inner_a) % na] : b[(i / inner_b) % nb];
}

}  // namespace stow
