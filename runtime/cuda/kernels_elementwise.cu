// Elementwise and data-movement kernels: fills, broadcast arithmetic, row sums, GELU, SiLU, rotary
// embeddings, permutes and column slices. The formulas are kernel_math.h's, shared
// with the CPU backend.
#include <string>

#include "launch.h"

namespace stow::cuda {

void iota(Ctx& c, int32_t* out, int64_t n) {
  c.touch(out, n * 4);
  for_each(c, "iota", n, [=] __device__(int64_t i) { out[i] = int32_t(i); });
}

void fill(Ctx& c, float* out, int64_t n, float value) {
  c.touch(out, n * 4);
  for_each(c, "fill", n, [=] __device__(int64_t i) { out[i] = value; });
}

void scale(Ctx& c, float* out, const float* a, float s, int64_t n) {
  c.touch(out, n * 4);
  for_each(c, "scale", n, [=] __device__(int64_t i) { out[i] = a[i] * s; });
}

static void check_broadcast(const Ctx& c, const char* name, int64_t n, int64_t nb) {
  if (nb <= 0 || n % nb != 0)
    throw Error(std::string("internal: ") + name + " of " + std::to_string(n) + " elements cannot broadcast " +
                std::to_string(nb) + " (node " + c.node + ")");
}

void add(Ctx& c, float* out, const float* a, const float* b, int64_t n, int64_t nb) {
  check_broadcast(c, "add", n, nb);
  c.touch(out, n * 4);
  for_each(c, "add", n, [=] __device__(int64_t i) { out[i] = a[i] + b[i % nb]; });
}

void mul(Ctx& c, float* out, const float* a, const float* b, int64_t n, int64_t nb) {
  check_broadcast(c, "mul", n, nb);
  c.touch(out, n * 4);
  for_each(c, "mul", n, [=] __device__(int64_t i) { out[i] = a[i] * b[i % nb]; });
}

void sum_rows(Ctx& c, float* out, const float* in, int64_t rows, int64_t cols) {
  c.touch(out, cols * 4);
  column_sums(c, "sum_rows", out, rows, cols, [=] __device__(int64_t r, int64_t col) { return in[r * cols + col]; });
}

void gelu_fwd(Ctx& c, float* y, const float* x, int64_t n) {
  c.touch(y, n * 4);
  for_each(c, "gelu_fwd", n, [=] __device__(int64_t i) { y[i] = math::gelu(x[i]); });
}

void gelu_bwd(Ctx& c, float* dx, const float* x, const float* dy, int64_t n) {
  c.touch(dx, n * 4);
  for_each(c, "gelu_bwd", n, [=] __device__(int64_t i) { dx[i] = math::gelu_grad(x[i], dy[i]); });
}

void silu_fwd(Ctx& c, float* y, const float* x, int64_t n) {
  c.touch(y, n * 4);
  for_each(c, "silu_fwd", n, [=] __device__(int64_t i) { y[i] = math::silu(x[i]); });
}

void silu_bwd(Ctx& c, float* dx, const float* x, const float* dy, int64_t n) {
  c.touch(dx, n * 4);
  for_each(c, "silu_bwd", n, [=] __device__(int64_t i) { dx[i] = math::silu_grad(x[i], dy[i]); });
}

// The cos and sin tables come first, in double as on the CPU, then each thread turns one pair (reading
// it whole before writing it, so y may be x).
void rope(Ctx& c, float* y, const float* x, int64_t rows, int64_t T, int64_t D, float base, bool inverse) {
  const int64_t half = D / 2;
  float* cos_t = static_cast<float*>(c.workspace(T * D * 4));
  float* sin_t = cos_t + T * half;
  c.touch(y, rows * D * 4);
  for_each(c, "rope tables", T * half, [=] __device__(int64_t k) {
    const int64_t t = k / half, i = k % half;
    const double angle = double(t) * pow(double(base), -2.0 * double(i) / double(D));
    cos_t[k] = float(cos(angle));
    sin_t[k] = float(inverse ? -sin(angle) : sin(angle));
  });
  for_each(c, "rope", rows * half, [=] __device__(int64_t k) {
    const int64_t r = k / half, i = k % half, t = r % T;
    const math::Pair turned = math::rotate(x[r * D + i], x[r * D + i + half], cos_t[t * half + i], sin_t[t * half + i]);
    y[r * D + i] = turned.a;
    y[r * D + i + half] = turned.b;
  });
}

namespace {
constexpr int kMaxRank = 6;
struct Strides {
  int64_t out_shape[kMaxRank], src_stride[kMaxRank];
};
}  // namespace

// The data-movement kernels move 4-byte words (float32 or int32: see core/kernel_list.h).
void permute(Ctx& c, void* out_any, const void* in_any, int rank, const int64_t* in_shape, const int* perm) {
  auto* out = static_cast<uint32_t*>(out_any);
  const auto* in = static_cast<const uint32_t*>(in_any);
  if (rank < 1 || rank > kMaxRank) throw Error("internal: permute of rank " + std::to_string(rank) + " (1 to 6 supported)");
  bool seen[kMaxRank] = {};
  for (int d = 0; d < rank; d++) {
    if (perm[d] < 0 || perm[d] >= rank || seen[perm[d]]) throw Error("internal: permute got an invalid axis order");
    seen[perm[d]] = true;
  }
  int64_t in_stride[kMaxRank];
  in_stride[rank - 1] = 1;
  for (int d = rank - 2; d >= 0; d--) in_stride[d] = in_stride[d + 1] * in_shape[d + 1];
  Strides s{};
  int64_t numel = 1;
  for (int d = 0; d < rank; d++) {
    s.out_shape[d] = in_shape[perm[d]];
    s.src_stride[d] = in_stride[perm[d]];
    numel *= s.out_shape[d];
  }
  c.touch(out, numel * 4);
  for_each(c, "permute", numel, [=] __device__(int64_t i) {
    int64_t rest = i, src = 0;
    for (int d = rank - 1; d >= 0; d--) {
      src += (rest % s.out_shape[d]) * s.src_stride[d];
      rest /= s.out_shape[d];
    }
    out[i] = in[src];
  });
}

void slice_last(Ctx& c, void* out_any, const void* in_any, int64_t rows, int64_t cols_in, int64_t offset, int64_t cols_out) {
  auto* out = static_cast<uint32_t*>(out_any);
  const auto* in = static_cast<const uint32_t*>(in_any);
  c.touch(out, rows * cols_out * 4);
  for_each(c, "slice_last", rows * cols_out, [=] __device__(int64_t i) {
    out[i] = in[(i / cols_out) * cols_in + offset + i % cols_out];
  });
}

// Touches all of out, as the CPU kernel does: the plan places the whole tensor.
void place_last(Ctx& c, void* out_any, const void* in_any, int64_t rows, int64_t cols_out, int64_t offset, int64_t cols_in) {
  auto* out = static_cast<uint32_t*>(out_any);
  const auto* in = static_cast<const uint32_t*>(in_any);
  c.touch(out, rows * cols_out * 4);
  for_each(c, "place_last", rows * cols_in, [=] __device__(int64_t i) {
    out[(i / cols_in) * cols_out + offset + i % cols_in] = in[i];
  });
}

}  // namespace stow::cuda
