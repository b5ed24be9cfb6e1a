// The element math of the kernels, shared by the CPU backend (runtime/kernels_*.cpp) and the CUDA
// backend (runtime/cuda/*.cu): one definition of each formula, compiled for the host by g++ and for both
// sides by nvcc. The CPU tests (test/native/kernels_check.cpp, the PyTorch comparisons) therefore check
// the formulas the GPU runs; what differs between the backends is only how work is spread and summed.
//
// Everything here is plain arithmetic on floats (no libm calls but sqrt), so that g++ vectorizes the CPU
// loops that call it without -ffast-math, and results are the same bits as when the loops spelled the
// formulas out.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#define STOW_HD __host__ __device__
#else
#define STOW_HD
#endif

namespace stow::math {

// std::max and std::min exactly (a NaN first argument passes through), usable on the device.
STOW_HD inline float max_f(float a, float b) { return a < b ? b : a; }
STOW_HD inline float min_f(float a, float b) { return b < a ? b : a; }

STOW_HD inline float float_from_bits(int32_t bits) {
#ifdef __CUDA_ARCH__
  return __int_as_float(bits);
#else
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
#endif
}

// exp(x) in plain arithmetic, so that loops calling it vectorize (libm's expf is an opaque call that
// blocks vectorization without -ffast-math). Cephes' expf: x = n ln2 + r with |r| <= ln2 / 2,
// exp(r) by a degree-7 polynomial, 2^n built in the exponent bits; about 1 ulp over the range.
// Below -87.3 (where exp(x) is no longer a normal float) it returns 0; above 88.3 it saturates at
// exp(88.3) instead of overflowing (softmax callers pass x <= 0; vtanh relies on the saturation).
STOW_HD inline float vexp(float x) {
  const float xc = min_f(max_f(x, -87.3f), 88.3f);
  // n = round(x / ln 2): adding and subtracting 1.5 * 2^23 rounds to an integer (std::floor would
  // not vectorize).
  const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;  // ln 2 split in two for exactness
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e = p * r * r + r + 1.0f;
  const float two_n = float_from_bits((int32_t(n) + 127) << 23);
  return x < -87.3f ? 0.0f : e * two_n;
}

// Dropout's counter-based random bits: a hash of (seed, step, index), so no random state is kept and any
// kernel that needs element i's mask again (the gradient, a recomputation) draws the same bit. Each mix is
// lowbias32 (Chris Wellons' hash-prospector); ir/interpret_ops.ts's dropoutKeep is the same function.
STOW_HD inline uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  return x ^ (x >> 16);
}

// Keeps element `index` when the hash's top 24 bits, as a fraction of 2^24, are at least p.
STOW_HD inline bool dropout_keep(uint32_t seed, int64_t step, int64_t index, float p) {
  uint32_t h = mix32(seed ^ 0x9e3779b9u);
  h = mix32(h ^ uint32_t(step));
  h = mix32(h ^ uint32_t(uint64_t(index)));
  h = mix32(h ^ uint32_t(uint64_t(index) >> 32));
  return float(h >> 8) * (1.0f / 16777216.0f) >= p;
}

// tanh through vexp, for the same reason. Its error is absolute (about 1e-7), not relative: right for
// GELU, which only uses 1 + tanh and 1 - tanh^2.
STOW_HD inline float vtanh(float u) { return 1.0f - 2.0f / (vexp(2.0f * u) + 1.0f); }

// GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
constexpr float kGeluK = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kGeluA = 0.044715f;

STOW_HD inline float gelu(float x) { return 0.5f * x * (1.0f + vtanh(kGeluK * (x + kGeluA * x * x * x))); }

// d/dx [0.5 x (1 + tanh u)] = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) u',  u' = k (1 + 3 a x^2).
STOW_HD inline float gelu_grad(float x, float dy) {
  const float x2 = x * x;
  const float t = vtanh(kGeluK * (x + kGeluA * x2 * x));
  const float du = kGeluK * (1.0f + 3.0f * kGeluA * x2);
  return dy * (0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du);
}

// SiLU: y = x sigmoid(x); dx = dy s (1 + x (1 - s)) with s = sigmoid(x).
STOW_HD inline float silu(float x) { return x / (1.0f + vexp(-x)); }

STOW_HD inline float silu_grad(float x, float dy) {
  const float s = 1.0f / (1.0f + vexp(-x));
  return dy * s * (1.0f + x * (1.0f - s));
}

// The functions of the `unary`, `binary` and `reduce` ops, numbered as ir/op_attrs.ts lists them
// (UNARY_FNS, BINARY_FNS, REDUCE_FNS): codegen passes the number.
enum UnaryFn : int32_t { kNeg, kExp, kLog, kSqrt, kRsqrt, kTanh, kSigmoid, kAbs, kRelu, kSquare, kReciprocal, kPow };
// The comparisons (kEq to kGe) give 1.0f where the relation holds, else 0.0f, and have no gradient.
enum BinaryFn : int32_t { kAdd, kSub, kMul, kDiv, kBPow, kMaximum, kMinimum, kEq, kNe, kLt, kLe, kGt, kGe, kBinaryCount };
enum ReduceFn : int32_t { kSum, kMean, kMax };

// y = fn(x); p is kPow's exponent. exp, tanh and sigmoid go through vexp; log and pow are libm's.
STOW_HD inline float unary(int32_t fn, float x, float p) {
  switch (fn) {
    case kNeg: return -x;
    case kExp: return vexp(x);
    case kLog: return std::log(x);
    case kSqrt: return std::sqrt(x);
    case kRsqrt: return 1.0f / std::sqrt(x);
    case kTanh: return vtanh(x);
    case kSigmoid: return 1.0f / (1.0f + vexp(-x));
    case kAbs: return x < 0.0f ? -x : x;
    case kRelu: return x > 0.0f ? x : 0.0f;
    case kSquare: return x * x;
    case kReciprocal: return 1.0f / x;
    default: return std::pow(x, p);
  }
}

// dx = dy fn'(x) (abs and relu: 0 at 0, as PyTorch).
STOW_HD inline float unary_grad(int32_t fn, float x, float p, float dy) {
  switch (fn) {
    case kNeg: return -dy;
    case kExp: return dy * vexp(x);
    case kLog: return dy / x;
    case kSqrt: return dy * 0.5f / std::sqrt(x);
    case kRsqrt: return dy * -0.5f / (x * std::sqrt(x));
    case kTanh: {
      const float t = vtanh(x);
      return dy * (1.0f - t * t);
    }
    case kSigmoid: {
      const float s = 1.0f / (1.0f + vexp(-x));
      return dy * s * (1.0f - s);
    }
    case kAbs: return x > 0.0f ? dy : x < 0.0f ? -dy : 0.0f;
    case kRelu: return x > 0.0f ? dy : 0.0f;
    case kSquare: return dy * 2.0f * x;
    case kReciprocal: return -dy / (x * x);
    default: return dy * p * std::pow(x, p - 1.0f);
  }
}

STOW_HD inline float binary(int32_t fn, float a, float b) {
  switch (fn) {
    case kAdd: return a + b;
    case kSub: return a - b;
    case kMul: return a * b;
    case kDiv: return a / b;
    case kBPow: return std::pow(a, b);
    case kMaximum: return max_f(a, b);
    case kMinimum: return min_f(a, b);
    case kEq: return a == b ? 1.0f : 0.0f;
    case kNe: return a != b ? 1.0f : 0.0f;
    case kLt: return a < b ? 1.0f : 0.0f;
    case kLe: return a <= b ? 1.0f : 0.0f;
    case kGt: return a > b ? 1.0f : 0.0f;
    default: return a >= b ? 1.0f : 0.0f;
  }
}

// The gradient of binary for operand `side` (0: a, 1: b). maximum and minimum split a tie evenly, as
// PyTorch does.
STOW_HD inline float binary_grad(int32_t fn, int32_t side, float a, float b, float dy) {
  switch (fn) {
    case kAdd: return dy;
    case kSub: return side == 0 ? dy : -dy;
    case kMul: return side == 0 ? dy * b : dy * a;
    case kDiv: return side == 0 ? dy / b : -dy * a / (b * b);
    case kBPow: return side == 0 ? dy * b * std::pow(a, b - 1.0f) : dy * std::pow(a, b) * std::log(a);
    case kMaximum:
    case kMinimum: {
      if (a == b) return 0.5f * dy;
      const bool a_wins = fn == kMaximum ? a > b : a < b;
      return a_wins == (side == 0) ? dy : 0.0f;
    }
    default: return 0.0f;  // a comparison is flat
  }
}

// One row of a reduction: sum, mean or max of term(0..C), in index order. reduce_last reads its input
// through it, and a generated fused kernel (codegen/fused_kernel.ts) its last step, so both add the
// same values in the same order.
template <class Term>
STOW_HD inline float reduce_row_of(int32_t fn, int64_t C, Term term) {
  if (fn == kMax) {
    float m = -INFINITY;
    for (int64_t j = 0; j < C; j++) {
      const float x = term(j);
      m = x > m ? x : m;
    }
    return m;
  }
  float s = 0.0f;
  for (int64_t j = 0; j < C; j++) s += term(j);
  return fn == kMean ? s / float(C) : s;
}

// One row of reduce_last: sum, mean or max of x[0..C), in index order.
STOW_HD inline float reduce_row(int32_t fn, const float* x, int64_t C) {
  return reduce_row_of(fn, C, [x](int64_t j) { return x[j]; });
}

// Each element of a sum's or mean's row gradient: dy, over C for a mean.
STOW_HD inline float reduce_spread(int32_t fn, float dy, int64_t C) { return fn == kMean ? dy / float(C) : dy; }

// One row of reduce_last_bwd; dx may be x (each element is read before it is written).
STOW_HD inline void reduce_row_grad(int32_t fn, float* dx, const float* x, float y, float dy, int64_t C) {
  if (fn == kMax) {
    int64_t ties = 0;
    for (int64_t j = 0; j < C; j++) ties += x[j] == y ? 1 : 0;
    const float share = dy / float(ties > 0 ? ties : 1);
    for (int64_t j = 0; j < C; j++) dx[j] = x[j] == y ? share : 0.0f;
    return;
  }
  const float g = reduce_spread(fn, dy, C);
  for (int64_t j = 0; j < C; j++) dx[j] = g;
}

// A fused kernel's step value, as its op's own kernel would have stored it. nvcc and ptxas contract a
// product and a following sum into one FMA (rounded once) unless told otherwise (--fmad=true, kept for
// the hand-written kernels); the unfused kernels round the product when they store it. So on the device
// each step's value passes through an add of -0 with an explicit rounding mode (x + -0 is x, signed
// zeros included), written in PTX so that NVVM cannot fold it: PTX contracts only adds and multiplies
// without a rounding modifier, so no FMA spans two steps. g++ contracts nothing (-ffp-contract=off,
// codegen/toolchain.ts), so on the host this is the value itself.
STOW_HD inline float kept(float x) {
#ifdef __CUDA_ARCH__
  float rounded;
  asm("add.rn.f32 %0, %1, 0f80000000;" : "=f"(rounded) : "f"(x));
  return rounded;
#else
  return x;
#endif
}

// A constant the compiler cannot see through: a fused kernel's scale, exponent or fill value, which the
// unfused kernels take as arguments, so the generated code is not specialised on them either.
inline float opaque(float x) {
  volatile float v = x;
  return v;
}

// Where an attention mask's entries sit (kernel_list.h's attention_fwd): row i of query slab bh starts
// at row_of(bh, i). The strides are those of a contiguous [batch?, heads?, rows?, Tk] mask, 0 along an
// axis it broadcasts over, so the nonzero ones decrease from batch to row.
struct MaskStrides {
  int64_t heads, batch, head, row;
  STOW_HD int64_t row_of(int64_t bh, int64_t i) const { return bh / heads * batch + bh % heads * head + i * row; }
  // The mask's element count, for BH slabs of T queries against Tk keys.
  STOW_HD int64_t elements(int64_t BH, int64_t T, int64_t Tk) const {
    if (batch != 0) return BH / heads * batch;
    if (head != 0) return heads * head;
    return row != 0 ? T * row : Tk;
  }
};

// Rotary embedding of one rotate-half pair (a, b) = (x_i, x_{i+D/2}) by the angle whose cosine and sine
// are c and s (s negated for the inverse rotation, which is the gradient).
struct Pair {
  float a, b;
};
STOW_HD inline Pair rotate(float a, float b, float c, float s) { return {a * c - b * s, b * c + a * s}; }

// The scalars of one AdamW step, computed once per tensor on the host in double as PyTorch computes
// them (torch.optim.AdamW, foreach=False), then rounded to float for the element updates.
struct AdamScalars {
  float decay_factor, beta1, beta2, one_minus_beta1, one_minus_beta2, eps, neg_step_size, bias_correction2_sqrt;
};

inline AdamScalars adam_scalars(float lr, float beta1, float beta2, float eps, float weight_decay, int64_t step,
                                bool decay) {
  const double t = double(step);
  const double bias_correction1 = 1.0 - std::pow(double(beta1), t);
  const double bias_correction2 = 1.0 - std::pow(double(beta2), t);
  return {decay ? float(1.0 - double(lr) * double(weight_decay)) : 1.0f,
          beta1,
          beta2,
          float(1.0 - double(beta1)),
          float(1.0 - double(beta2)),
          eps,
          float(-(double(lr) / bias_correction1)),
          float(std::sqrt(bias_correction2))};
}

// One element of AdamW in place: g = grad * gscale;  p = p * decay_factor - step_size * m / denom with
// m = beta1 m + (1 - beta1) g,  v = beta2 v + (1 - beta2) g^2,  denom = sqrt(v) / sqrt(1 - beta2^t) + eps.
STOW_HD inline void adamw_element(float& p, float grad, float& m, float& v, float gscale, const AdamScalars& s) {
  const float gi = grad * gscale;
  const float mi = m * s.beta1 + s.one_minus_beta1 * gi;
  const float vi = v * s.beta2 + s.one_minus_beta2 * gi * gi;
  const float denom = std::sqrt(vi) / s.bias_correction2_sqrt + s.eps;
  m = mi;
  v = vi;
  p = p * s.decay_factor + s.neg_step_size * (mi / denom);
}

// torch.nn.utils.clip_grad_norm_'s factor: min(1, clip / (norm + 1e-6)); 1 without clipping.
STOW_HD inline float clip_scale(float clip, float norm) { return clip > 0 ? min_f(1.0f, clip / (norm + 1e-6f)) : 1.0f; }

// LayerNorm of one element given its row's mean and rstd: (x - mean) rstd, then the affine map.
STOW_HD inline float normalized(float x, float mean, float rstd) { return (x - mean) * rstd; }

// LayerNorm's input gradient of one element: rstd (dy w - mean(dy w) - xhat mean(dy w xhat)).
STOW_HD inline float layernorm_dx(float dy_w, float xhat, float rstd, float g_mean, float gx_mean) {
  return rstd * (dy_w - g_mean - xhat * gx_mean);
}

// Cross-entropy's gradient of one logit: dloss / N (softmax - onehot), given exp(x - max) / sum.
STOW_HD inline float cross_entropy_grad(float prob, bool is_target, float f) { return f * (is_target ? prob - 1.0f : prob); }

// An online softmax (the fused LM head's, over tiles of a row): a running sum of exp(x - old_max) moved
// to a new, larger max, before the new tile's terms are added.
STOW_HD inline float rescaled_sum(float sum, float old_max, float new_max) { return sum * vexp(old_max - new_max); }

// A row's cross-entropy from its max, its target's logit and its sum of exp(x - max).
STOW_HD inline float row_loss(float max, float target_logit, float sum) { return (max - target_logit) + std::log(sum); }

// A row's log-sum-exp from its max and its sum of exp(x - max).
STOW_HD inline float log_sum_exp(float max, float sum) { return max + std::log(sum); }

}  // namespace stow::math
