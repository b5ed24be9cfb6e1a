// Helpers shared by the kernels_*.cpp files (not part of the kernel API).
//
// Reductions here use kLanes independent accumulators: lane l takes elements l, l + kLanes, ..., and
// the lanes are then added pairwise. The order is fixed by this code, so results are reproducible,
// and the independent lanes let the compiler vectorize without -ffast-math (which would let it
// reorder sums on its own).
#pragma once
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/ctx.h"
#include "core/kernel_math.h"

namespace stow::detail {

constexpr int kLanes = 16;

template <class T>
inline T combine_lanes(T* acc) {
  for (int width = kLanes / 2; width > 0; width /= 2)
    for (int l = 0; l < width; l++) acc[l] += acc[l + width];
  return acc[0];
}

// sum over i in [0, n) of term(i), accumulated in Acc.
template <class Acc, class Term>
inline Acc lane_sum(int64_t n, Term term) {
  Acc acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; l++) acc[l] += term(i + l);
  for (int l = 0; i < n; i++, l++) acc[l] += term(i);
  return combine_lanes(acc);
}

inline float dot(const float* a, const float* b, int64_t n) {
  return lane_sum<float>(n, [&](int64_t i) { return a[i] * b[i]; });
}

inline float row_max(const float* x, int64_t n) {
  float acc[kLanes];
  for (int l = 0; l < kLanes; l++) acc[l] = -INFINITY;
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; l++) acc[l] = x[i + l] > acc[l] ? x[i + l] : acc[l];
  for (int l = 0; i < n; i++, l++) acc[l] = x[i] > acc[l] ? x[i] : acc[l];
  float m = acc[0];
  for (int l = 1; l < kLanes; l++) m = acc[l] > m ? acc[l] : m;
  return m;
}

// exp and tanh in plain arithmetic (kernel_math.h, shared with the CUDA kernels).
using math::vexp;
using math::vtanh;

// y[i] += a * x[i]
inline void axpy(float* y, float a, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

// This thread's contiguous share of [0, n) inside a parallel region.
struct Span {
  int64_t begin, end;
};
inline Span thread_span(int64_t n) {
  const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
  return {n * t / nt, n * (t + 1) / nt};
}

// Columns handled together by column-parallel reductions (each column is summed over rows in row
// order, so the result does not depend on how blocks are spread over threads).
constexpr int64_t kColBlock = 64;

// Sum of squares of `count` tensors in double, bitwise the same for a given thread count (kernels_adamw.cpp).
double sum_of_squares(const Ctx& c, const float* const* grads, const int64_t* sizes, int64_t count);
// One tensor's share of it on each of `threads` threads (thread_span's shares), summed on the caller:
// what each thread adds for the tensor, kept for a gradient written to disk (grad_norm_from_disk).
std::vector<double> squares_by_share(const float* g, int64_t n, int threads);

// AdamW's element update over n consecutive elements (kernels_adamw.cpp): the one loop every AdamW runs.
void adamw_span(float* p, const float* g, float* m, float* v, int64_t n, float gscale, const math::AdamScalars& s);

// A user-facing error that names the node being run.
[[noreturn]] inline void fail(const Ctx& c, const std::string& what) {
  std::string where = c.node && *c.node ? std::string(" (node ") + c.node + ")" : std::string();
  throw Error(what + where);
}

}  // namespace stow::detail
