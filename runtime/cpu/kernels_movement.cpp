// Data movement along any axis: constant padding, broadcasting and its gradient, index_select and
// gather and their scatter-add gradients. Which element goes where is core/move_index.h's, shared with
// CUDA; the scatter-adds give each (o, i) column to one thread, which adds its j in order, so the sums
// are the same bits on every run and on both backends.
#include <string>

#include "kernels.h"
#include "kernels_common.h"
#include "core/move_index.h"

namespace stow {
using namespace detail;

static move::Dims checked_dims(Ctx& c, const char* name, int rank, const int64_t* shape) {
  if (rank < 1 || rank > move::kMaxRank)
    fail(c, std::string("internal: ") + name + " of rank " + std::to_string(rank) + " (1 to 6 supported)");
  return move::dims(rank, shape);
}

void pad(Ctx& c, void* out_any, const void* in_any, int rank, const int64_t* in_shape, const int64_t* before,
         const int64_t* out_shape, uint32_t fill) {
  auto* out = static_cast<uint32_t*>(out_any);
  const auto* in = static_cast<const uint32_t*>(in_any);
  const move::Dims in_d = checked_dims(c, "pad", rank, in_shape), b = move::dims(rank, before), out_d = move::dims(rank, out_shape);
  const int64_t n = out_d.numel();
  c.touch(out, n * 4);
#pragma omp parallel for schedule(static) num_threads(c.threads)
  for (int64_t i = 0; i < n; i++) {
    const int64_t src = move::pad_source(in_d, b, out_d, i);
    out[i] = src < 0 ? fill : in[src];
  }
}

void expand(Ctx& c, void* out_any, const void* in_any, int rank, const int64_t* in_shape, const int64_t* out_shape) {
  auto* out = static_cast<uint32_t*>(out_any);
  const auto* in = static_cast<const uint32_t*>(in_any);
  const move::Dims in_d = checked_dims(c, "expand", rank, in_shape), out_d = move::dims(rank, out_shape);
  const int64_t n = out_d.numel();
  c.touch(out, n * 4);
#pragma omp parallel for schedule(static) num_threads(c.threads)
  for (int64_t i = 0; i < n; i++) out[i] = in[move::expand_source(in_d, out_d, i)];
}

void expand_bwd(Ctx& c, float* dx, const float* dy, int rank, const int64_t* dx_shape, const int64_t* dy_shape) {
  const move::Dims small = checked_dims(c, "expand_bwd", rank, dx_shape), big = move::dims(rank, dy_shape);
  const int64_t n = small.numel();
  c.touch(dx, n * 4);
#pragma omp parallel for schedule(static) num_threads(c.threads)
  for (int64_t j = 0; j < n; j++) dx[j] = move::expand_sum(small, big, dy, j);
}

static void check_indices(Ctx& c, const int32_t* idx, int64_t count, int64_t D, bool per_element) {
  for (int64_t k = 0; k < count; k++)
    if (idx[k] < 0 || idx[k] >= D)
      fail(c, std::string(per_element ? "gather" : "index_select") + ": index " + std::to_string(idx[k]) + " at position " +
                  std::to_string(k) + " is outside [0, " + std::to_string(D) + ")");
}

void take_axis(Ctx& c, void* out_any, const void* x_any, const int32_t* idx, int64_t outer, int64_t D, int64_t n,
               int64_t inner, bool per_element) {
  auto* out = static_cast<uint32_t*>(out_any);
  const auto* x = static_cast<const uint32_t*>(x_any);
  check_indices(c, idx, per_element ? outer * n * inner : n, D, per_element);
  c.touch(out, outer * n * inner * 4);
#pragma omp parallel for schedule(static) num_threads(c.threads)
  for (int64_t r = 0; r < outer * n; r++) {
    const int64_t o = r / n, j = r % n;
    for (int64_t i = 0; i < inner; i++)
      out[r * inner + i] = x[(o * D + move::take_index(idx, o, j, i, n, inner, per_element)) * inner + i];
  }
}

void take_axis_bwd(Ctx& c, float* dx, const int32_t* idx, const float* dy, int64_t outer, int64_t D, int64_t n,
                   int64_t inner, bool per_element) {
  check_indices(c, idx, per_element ? outer * n * inner : n, D, per_element);
  c.touch(dx, outer * D * inner * 4);
#pragma omp parallel for schedule(static) num_threads(c.threads)
  for (int64_t o = 0; o < outer; o++) {
    float* col = dx + o * D * inner;
    for (int64_t k = 0; k < D * inner; k++) col[k] = 0.0f;
    for (int64_t j = 0; j < n; j++)
      for (int64_t i = 0; i < inner; i++)
        col[move::take_index(idx, o, j, i, n, inner, per_element) * inner + i] += dy[(o * n + j) * inner + i];
  }
}

}  // namespace stow
