// The emulated CUDA target's stand-in for <cuda_bf16.h>: bfloat16 as the GPU converts it. A float
// becomes the nearest bfloat16, ties to even (what __float2bfloat16 and the tensor cores' input
// rounding do); NaN stays a quiet NaN of the same sign; a bfloat16 widens to float exactly.
#pragma once
#include <cstdint>
#include <cstring>

struct __nv_bfloat16 {
  uint16_t x;
};
typedef __nv_bfloat16 nv_bfloat16;

inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return {uint16_t((bits >> 16) | 0x0040u)};  // NaN: keep it quiet
  const uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);                               // ties to even
  return {uint16_t((bits + rounding) >> 16)};
}

inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }

inline float __bfloat162float(__nv_bfloat16 h) {
  const uint32_t bits = uint32_t(h.x) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// The float a value becomes when rounded through bfloat16, as a GEMM on bf16 inputs sees it.
inline float stow_round_to_bf16(float f) { return __bfloat162float(__float2bfloat16_rn(f)); }
