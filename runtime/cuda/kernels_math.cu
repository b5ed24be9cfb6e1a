// Elementwise math and last-axis reductions: the `unary`, `binary` and `reduce` ops and their
// gradients, with kernel_math.h's formulas (shared with the CPU). The function number is uniform over
// a launch, so its switch never diverges a warp. A reduction row is one thread's sequential loop, in
// index order as on the CPU: simple and exact, not fast (a fusion pass is to generate better ones).
#include <string>

#include "launch.h"

namespace stow::cuda {

static void check_fn(const Ctx& c, const char* name, int32_t fn, int32_t count) {
  if (fn < 0 || fn >= count)
    throw Error(std::string("internal: ") + name + " has no function " + std::to_string(fn) + " (node " + c.node + ")");
}

static void check_broadcast(const Ctx& c, const char* name, int64_t n, int64_t inner, int64_t nb) {
  if (nb <= 0 || inner <= 0 || n % (nb * inner) != 0)
    throw Error(std::string("internal: ") + name + " of " + std::to_string(n) + " elements cannot broadcast " +
                std::to_string(nb) + " (node " + c.node + ")");
}

void unary(Ctx& c, float* y, const float* x, int64_t n, int32_t fn, float p) {
  check_fn(c, "unary", fn, math::kPow + 1);
  c.touch(y, n * 4);
  for_each(c, "unary", n, [=] __device__(int64_t i) { y[i] = math::unary(fn, x[i], p); });
}

void unary_bwd(Ctx& c, float* dx, const float* x, const float* dy, int64_t n, int32_t fn, float p) {
  check_fn(c, "unary_bwd", fn, math::kPow + 1);
  c.touch(dx, n * 4);
  for_each(c, "unary_bwd", n, [=] __device__(int64_t i) { dx[i] = math::unary_grad(fn, x[i], p, dy[i]); });
}

void binary(Ctx& c, float* out, const float* a, const float* b, int64_t n, int64_t inner, int64_t nb, int32_t fn) {
  check_fn(c, "binary", fn, math::kBinaryCount);
  check_broadcast(c, "binary", n, inner, nb);
  c.touch(out, n * 4);
  for_each(c, "binary", n, [=] __device__(int64_t i) { out[i] = math::binary(fn, a[i], b[(i / inner) % nb]); });
}

void binary_bwd(Ctx& c, float* d, const float* a, const float* b, const float* dy, int64_t n, int64_t inner, int64_t nb,
                int32_t fn, int32_t side) {
  check_fn(c, "binary_bwd", fn, math::kBinaryCount);
  check_broadcast(c, "binary_bwd", n, inner, nb);
  c.touch(d, n * 4);
  for_each(c, "binary_bwd", n,
           [=] __device__(int64_t i) { d[i] = math::binary_grad(fn, side, a[i], b[(i / inner) % nb], dy[i]); });
}

void reduce_last(Ctx& c, float* y, const float* x, int64_t rows, int64_t C, int32_t fn) {
  check_fn(c, "reduce_last", fn, math::kMax + 1);
  c.touch(y, rows * 4);
  for_each(c, "reduce_last", rows, [=] __device__(int64_t r) { y[r] = math::reduce_row(fn, x + r * C, C); });
}

void reduce_last_bwd(Ctx& c, float* dx, const float* x, const float* y, const float* dy, int64_t rows, int64_t C,
                     int32_t fn) {
  check_fn(c, "reduce_last_bwd", fn, math::kMax + 1);
  if (fn == math::kMax && (x == nullptr || y == nullptr))
    throw Error(std::string("internal: reduce_last_bwd of max needs x and y (node ") + c.node + ")");
  c.touch(dx, rows * C * 4);
  for_each(c, "reduce_last_bwd", rows,
           [=] __device__(int64_t r) {
             math::reduce_row_grad(fn, dx + r * C, x ? x + r * C : nullptr, y ? y[r] : 0.0f, dy[r], C);
           });
}

void where(Ctx& c, float* out, const float* cond, const float* a, const float* b, int64_t n, int64_t inner_c, int64_t nc,
           int64_t inner_a, int64_t na, int64_t inner_b, int64_t nb) {
  check_broadcast(c, "where", n, inner_c, nc);
  check_broadcast(c, "where", n, inner_a, na);
  check_broadcast(c, "where", n, inner_b, nb);
  c.touch(out, n * 4);
  for_each(c, "where", n, [=] __device__(int64_t i) {
    out[i] = cond[(i / inner_c) % nc] != 0.0f ? a[(i / inner_a) % na] : b[(i / inner_b) % nb];
  });
}

}  // namespace stow::cuda
