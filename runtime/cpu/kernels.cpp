// Elementwise and data-movement kernels: fills, broadcast arithmetic, row sums, GELU, permutes and
// column slices. The heavier kernels live in kernels_<family>.cpp next to this file.
#include <algorithm>
#include <cstring>

#include "kernels.h"
#include "kernels_common.h"

namespace stow {
using namespace detail;

void iota(Ctx& c, int32_t* out, int64_t n) {
  c.touch(out, n * 4);
#pragma omp parallel for schedule(static) num_threads(c.threads)
  for (int64_t i = 0; i < n; i++) out[i] = static_cast<int32_t>(i);
}

void fill(Ctx& c, float* out, int64_t n, float value) {
  c.touch(out, n * 4);
#pragma omp parallel for schedule(static) num_threads(c.threads)
  for (int64_t i = 0; i < n; i++) out[i] = value;
}

void copy(Ctx& c, float* out, const float* in, int64_t n) {
  c.touch(out, n * 4);
#pragma omp parallel for schedule(static) num_threads(c.threads)
  for (int64_t i = 0; i < n; i++) out[i] = in[i];
}

void scale(Ctx& c, float* out, const float* a, float s, int64_t n) {
  c.touch(out, n * 4);
#pragma omp parallel for schedule(static) num_threads(c.threads)
  for (int64_t i = 0; i < n; i++) out[i] = a[i] * s;
}

// out[i] = op(a[i], b[i % nb]). The three shapes get their own loop so that each inner loop is a
// plain vectorizable sweep without a modulo per element.
template <class Op>
static void broadcast_binary(Ctx& c, const char* name, float* out, const float* a, const float* b, int64_t n,
                             int64_t nb, Op op) {
  if (nb <= 0 || n % nb != 0)
    fail(c, std::string("internal: ") + name + " of " + std::to_string(n) + " elements cannot broadcast " +
                std::to_string(nb));
  c.touch(out, n * 4);
  if (nb == n) {
#pragma omp parallel for schedule(static) num_threads(c.threads)
    for (int64_t i = 0; i < n; i++) out[i] = op(a[i], b[i]);
  } else if (nb == 1) {
    const float s = b[0];
#pragma omp parallel for schedule(static) num_threads(c.threads)
    for (int64_t i = 0; i < n; i++) out[i] = op(a[i], s);
  } else {
    const int64_t rows = n / nb;
#pragma omp parallel for schedule(static) num_threads(c.threads)
    for (int64_t r = 0; r < rows; r++) {
      const float* ar = a + r * nb;
      float* outr = out + r * nb;
      for (int64_t j = 0; j < nb; j++) outr[j] = op(ar[j], b[j]);
    }
  }
}

void add(Ctx& c, float* out, const float* a, const float* b, int64_t n, int64_t nb) {
  broadcast_binary(c, "add", out, a, b, n, nb, [](float x, float y) { return x + y; });
}

void mul(Ctx& c, float* out, const float* a, const float* b, int64_t n, int64_t nb) {
  broadcast_binary(c, "mul", out, a, b, n, nb, [](float x, float y) { return x * y; });
}

// Column-parallel: each column block sweeps the rows in order, so every out[col] is summed in row
// order whatever the thread count.
void sum_rows(Ctx& c, float* out, const float* in, int64_t rows, int64_t cols) {
  c.touch(out, cols * 4);
  const int64_t blocks = (cols + kColBlock - 1) / kColBlock;
#pragma omp parallel for schedule(static) num_threads(c.threads)
  for (int64_t blk = 0; blk < blocks; blk++) {
    const int64_t j0 = blk * kColBlock, width = std::min(kColBlock, cols - j0);
    float* o = out + j0;
    for (int64_t j = 0; j < width; j++) o[j] = 0.0f;
    for (int64_t r = 0; r < rows; r++) axpy(o, 1.0f, in + r * cols + j0, width);
  }
}

void gelu_fwd(Ctx& c, float* y, const float* x, int64_t n) {
  c.touch(y, n * 4);
#pragma omp parallel for schedule(static) num_threads(c.threads)
  for (int64_t i = 0; i < n; i++) y[i] = math::gelu(x[i]);
}

void gelu_bwd(Ctx& c, float* dx, const float* x, const float* dy, int64_t n) {
  c.touch(dx, n * 4);
#pragma omp parallel for schedule(static) num_threads(c.threads)
  for (int64_t i = 0; i < n; i++) dx[i] = math::gelu_grad(x[i], dy[i]);
}

// Walks the output row by row (a row = its last axis); each row gathers from the input with the
// stride of the input axis that became the output's last one (a plain copy when that stride is 1).
// Elements are moved as 4-byte words (float32 or int32: see core/kernel_list.h), never read as numbers.
void permute(Ctx& c, void* out_any, const void* in_any, int rank, const int64_t* in_shape, const int* perm) {
  auto* out = static_cast<uint32_t*>(out_any);
  const auto* in = static_cast<const uint32_t*>(in_any);
  constexpr int kMaxRank = 6;
  if (rank < 1 || rank > kMaxRank) fail(c, "internal: permute of rank " + std::to_string(rank) + " (1 to 6 supported)");
  bool seen[kMaxRank] = {};
  for (int d = 0; d < rank; d++) {
    if (perm[d] < 0 || perm[d] >= rank || seen[perm[d]]) fail(c, "internal: permute got an invalid axis order");
    seen[perm[d]] = true;
  }
  int64_t in_stride[kMaxRank], out_shape[kMaxRank], src_stride[kMaxRank];
  in_stride[rank - 1] = 1;
  for (int d = rank - 2; d >= 0; d--) in_stride[d] = in_stride[d + 1] * in_shape[d + 1];
  int64_t numel = 1;
  for (int d = 0; d < rank; d++) {
    out_shape[d] = in_shape[perm[d]];
    src_stride[d] = in_stride[perm[d]];
    numel *= out_shape[d];
  }
  c.touch(out, numel * 4);
  const int64_t inner = out_shape[rank - 1], inner_stride = src_stride[rank - 1];
  if (numel == 0) return;
  const int64_t rows = numel / inner;
#pragma omp parallel for schedule(static) num_threads(c.threads)
  for (int64_t r = 0; r < rows; r++) {
    int64_t rest = r, base = 0;
    for (int d = rank - 2; d >= 0; d--) {
      base += (rest % out_shape[d]) * src_stride[d];
      rest /= out_shape[d];
    }
    const uint32_t* src = in + base;
    uint32_t* dst = out + r * inner;
    if (inner_stride == 1) {
      std::memcpy(dst, src, inner * 4);
    } else {
      for (int64_t j = 0; j < inner; j++) dst[j] = src[j * inner_stride];
    }
  }
}

void slice_last(Ctx& c, void* out_any, const void* in_any, int64_t rows, int64_t cols_in, int64_t offset, int64_t cols_out) {
  auto* out = static_cast<uint32_t*>(out_any);
  const auto* in = static_cast<const uint32_t*>(in_any);
  c.touch(out, rows * cols_out * 4);
#pragma omp parallel for schedule(static) num_threads(c.threads)
  for (int64_t r = 0; r < rows; r++) std::memcpy(out + r * cols_out, in + r * cols_in + offset, cols_out * 4);
}

// Writes only its columns of out, but touches all of out: the plan places the whole tensor, so its
// end is what the high-water mark must see.
void place_last(Ctx& c, void* out_any, const void* in_any, int64_t rows, int64_t cols_out, int64_t offset, int64_t cols_in) {
  auto* out = static_cast<uint32_t*>(out_any);
  const auto* in = static_cast<const uint32_t*>(in_any);
  c.touch(out, rows * cols_out * 4);
#pragma omp parallel for schedule(static) num_threads(c.threads)
  for (int64_t r = 0; r < rows; r++) std::memcpy(out + r * cols_out + offset, in + r * cols_in, cols_in * 4);
}

}  // namespace stow
