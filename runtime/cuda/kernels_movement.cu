// Data movement along any axis: constant padding, broadcasting and its gradient, index_select and
// gather and their scatter-add gradients, with core/move_index.h's index math (shared with the CPU).
// Each scatter-add column (o, i) is one thread that adds its j in order, without atomics: the same
// bits as the CPU's, run after run. Simple and exact, not fast.
#include <string>

#include "launch.h"
#include "core/move_index.h"

namespace stow::cuda {

static move::Dims checked_dims(const Ctx& c, const char* name, int rank, const int64_t* shape) {
  if (rank < 1 || rank > move::kMaxRank)
    throw Error(std::string("internal: ") + name + " of rank " + std::to_string(rank) + " (1 to 6 supported) (node " + c.node +
                ")");
  return move::dims(rank, shape);
}

void pad(Ctx& c, void* out_any, const void* in_any, int rank, const int64_t* in_shape, const int64_t* before,
         const int64_t* out_shape, uint32_t fill) {
  auto* out = static_cast<uint32_t*>(out_any);
  const auto* in = static_cast<const uint32_t*>(in_any);
  const move::Dims in_d = checked_dims(c, "pad", rank, in_shape), b = move::dims(rank, before), out_d = move::dims(rank, out_shape);
  const int64_t n = out_d.numel();
  c.touch(out, n * 4);
  for_each(c, "pad", n, [=] __device__(int64_t i) {
    const int64_t src = move::pad_source(in_d, b, out_d, i);
    out[i] = src < 0 ? fill : in[src];
  });
}

void expand(Ctx& c, void* out_any, const void* in_any, int rank, const int64_t* in_shape, const int64_t* out_shape) {
  auto* out = static_cast<uint32_t*>(out_any);
  const auto* in = static_cast<const uint32_t*>(in_any);
  const move::Dims in_d = checked_dims(c, "expand", rank, in_shape), out_d = move::dims(rank, out_shape);
  const int64_t n = out_d.numel();
  c.touch(out, n * 4);
  for_each(c, "expand", n, [=] __device__(int64_t i) { out[i] = in[move::expand_source(in_d, out_d, i)]; });
}

void expand_bwd(Ctx& c, float* dx, const float* dy, int rank, const int64_t* dx_shape, const int64_t* dy_shape) {
  const move::Dims small = checked_dims(c, "expand_bwd", rank, dx_shape), big = move::dims(rank, dy_shape);
  const int64_t n = small.numel();
  c.touch(dx, n * 4);
  for_each(c, "expand_bwd", n, [=] __device__(int64_t j) { dx[j] = move::expand_sum(small, big, dy, j); });
}

// Indices are not read back to the host: one outside [0, D) reads as 0 (the CPU kernel reports it).
void take_axis(Ctx& c, void* out_any, const void* x_any, const int32_t* idx, int64_t outer, int64_t D, int64_t n,
               int64_t inner, bool per_element) {
  auto* out = static_cast<uint32_t*>(out_any);
  const auto* x = static_cast<const uint32_t*>(x_any);
  c.touch(out, outer * n * inner * 4);
  for_each(c, "take_axis", outer * n * inner, [=] __device__(int64_t e) {
    const int64_t i = e % inner, r = e / inner, j = r % n, o = r / n;
    const int64_t k = move::take_index(idx, o, j, i, n, inner, per_element);
    out[e] = (k >= 0 && k < D) ? x[(o * D + k) * inner + i] : 0u;
  });
}

void take_axis_bwd(Ctx& c, float* dx, const int32_t* idx, const float* dy, int64_t outer, int64_t D, int64_t n,
                   int64_t inner, bool per_element) {
  c.touch(dx, outer * D * inner * 4);
  for_each(c, "take_axis_bwd zero", outer * D * inner, [=] __device__(int64_t e) { dx[e] = 0.0f; });
  for_each(c, "take_axis_bwd", outer * inner, [=] __device__(int64_t e) {
    const int64_t o = e / inner, i = e % inner;
    for (int64_t j = 0; j < n; j++) {
      const int64_t k = move::take_index(idx, o, j, i, n, inner, per_element);
      if (k >= 0 && k < D) dx[(o * D + k) * inner + i] += dy[(o * n + j) * inner + i];
    }
  });
}

}  // namespace stow::cuda
