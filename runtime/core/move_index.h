// The index math of the general data-movement kernels (pad, expand and its gradient), shared by the
// CPU backend (cpu/kernels_movement.cpp) and CUDA (cuda/kernels_movement.cu): one definition of which
// input element an output element reads. Shapes have at most kMoveRank axes (ir/movement.ts merges
// the rest), so they travel by value into a device lambda.
#pragma once
#include <cstdint>

#ifndef STOW_HD
#ifdef __CUDACC__
#define STOW_HD __host__ __device__
#else
#define STOW_HD
#endif
#endif

namespace stow::move {

constexpr int kMaxRank = 6;

// A shape, copied out of the caller's array (rank <= kMaxRank, checked by the kernels).
struct Dims {
  int rank = 0;
  int64_t d[kMaxRank] = {};
  int64_t numel() const {
    int64_t n = 1;
    for (int k = 0; k < rank; k++) n *= d[k];
    return n;
  }
};

inline Dims dims(int rank, const int64_t* shape) {
  Dims s;
  s.rank = rank;
  for (int k = 0; k < rank; k++) s.d[k] = shape[k];
  return s;
}

// pad: the flat index in `in` that element i of `out` reads, or -1 where it is padding.
STOW_HD inline int64_t pad_source(const Dims& in, const Dims& before, const Dims& out, int64_t i) {
  int64_t src = 0, stride = 1;
  for (int k = out.rank - 1; k >= 0; k--) {
    const int64_t j = i % out.d[k] - before.d[k];
    i /= out.d[k];
    if (j < 0 || j >= in.d[k]) return -1;
    src += j * stride;
    stride *= in.d[k];
  }
  return src;
}

// expand: the flat index in `in` that element i of `out` reads (axes of 1 in `in` read at 0).
STOW_HD inline int64_t expand_source(const Dims& in, const Dims& out, int64_t i) {
  int64_t src = 0, stride = 1;
  for (int k = out.rank - 1; k >= 0; k--) {
    const int64_t j = in.d[k] == 1 ? 0 : i % out.d[k];
    i /= out.d[k];
    src += j * stride;
    stride *= in.d[k];
  }
  return src;
}

// expand_bwd: element j of dx [small] summed over the elements of dy [big] it was copied to, in dy's
// index order (the broadcast axes counted row-major). Every axis of small is big's or 1.
STOW_HD inline float expand_sum(const Dims& small, const Dims& big, const float* dy, int64_t j) {
  int64_t at[kMaxRank] = {};
  int64_t terms = 1;
  for (int k = small.rank - 1; k >= 0; k--) {
    at[k] = j % small.d[k];
    j /= small.d[k];
    if (small.d[k] != big.d[k]) terms *= big.d[k];
  }
  float s = 0.0f;
  for (int64_t t = 0; t < terms; t++) {
    int64_t rest = t, flat = 0, stride = 1;
    for (int k = big.rank - 1; k >= 0; k--) {
      int64_t pos = at[k];
      if (small.d[k] != big.d[k]) {
        pos = rest % big.d[k];
        rest /= big.d[k];
      }
      flat += pos * stride;
      stride *= big.d[k];
    }
    s += dy[flat];
  }
  return s;
}

// take_axis: the index that out[o, j, i] reads along the axis.
STOW_HD inline int32_t take_index(const int32_t* idx, int64_t o, int64_t j, int64_t i, int64_t n, int64_t inner,
                                  bool per_element) {
  return per_element ? idx[(o * n + j) * inner + i] : idx[j];
}

}  // namespace stow::move
