// The cuBLAS functions the CUDA backend calls (runtime/cuda/cublas.h), for the emulated target only,
// with cuBLAS's documented semantics: column-major matrices, op(A) and op(B) by transa and transb,
// leading dimensions, strided batches, and the compute type. CUBLAS_COMPUTE_32F multiplies in fp32;
// CUBLAS_COMPUTE_32F_FAST_16BF rounds A and B to bfloat16 (to nearest, ties to even) and accumulates
// in fp32, as the tensor cores do. Arguments are validated as cuBLAS validates them, with its status
// codes, and each refusal is also printed, since a status alone says little. The product itself is
// OpenBLAS's sgemm, queued on the handle's stream; operands outside device memory fault when it runs,
// as a kernel's illegal address would.
#include <cblas.h>

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda_bf16.h"
#include "library_work.h"

struct cublasContext {
  cudaStream_t stream = nullptr;
};

namespace {

constexpr int kSuccess = 0, kNotInitialized = 1, kInvalidValue = 7, kExecutionFailed = 13, kNotSupported = 15;
constexpr int kOpN = 0, kOpT = 1, kOpC = 2;
constexpr int kCompute32F = 68, kCompute32FFast16BF = 75;

int refuse(int status, const std::string& why) {
  std::fprintf(stderr, "cuBLAS stand-in (emulated CUDA): cublasGemmStridedBatchedEx: %s\n", why.c_str());
  return status;
}

// A column-major operand as stored: rows x cols used, `ld` apart, batch matrices `stride` apart.
struct Operand {
  const float* data;
  int rows, cols, ld;
  long long stride;
  const char* name;
  // Elements from the first to one past the last the product reads.
  long long span(int batch) const { return (batch - 1) * stride + (long long)(cols - 1) * ld + rows; }
};

// op's matrix i rounded to bfloat16, packed with leading dimension rows.
std::vector<float> rounded_bf16(const Operand& o, int i) {
  std::vector<float> out(size_t(o.rows) * size_t(o.cols));
  const float* m = o.data + i * o.stride;
  for (int c = 0; c < o.cols; c++)
    for (int r = 0; r < o.rows; r++) out[size_t(c) * o.rows + r] = stow_round_to_bf16(m[(long long)c * o.ld + r]);
  return out;
}

}  // namespace

extern "C" int cublasCreate_v2(cublasContext** handle) {
  if (handle == nullptr) return kInvalidValue;
  *handle = new cublasContext;
  return kSuccess;
}

extern "C" int cublasDestroy_v2(cublasContext* handle) {
  if (handle == nullptr) return kNotInitialized;
  delete handle;
  return kSuccess;
}

extern "C" int cublasSetStream_v2(cublasContext* handle, cudaStream_t stream) {
  if (handle == nullptr) return kNotInitialized;
  handle->stream = stream;
  return kSuccess;
}

extern "C" int cublasSetWorkspace_v2(cublasContext* handle, void* workspace, size_t bytes) {
  if (handle == nullptr) return kNotInitialized;
  if (bytes > 0 && !stow::emu::is_device_range(workspace, bytes)) return kInvalidValue;
  return kSuccess;
}

extern "C" int cublasGemmStridedBatchedEx(cublasContext* handle, int transa, int transb, int m, int n, int k,
                                          const void* alpha, const void* a, cudaDataType a_type, int lda,
                                          long long stride_a, const void* b, cudaDataType b_type, int ldb,
                                          long long stride_b, const void* beta, void* c, cudaDataType c_type, int ldc,
                                          long long stride_c, int batch_count, int compute_type, int algo) {
  if (handle == nullptr) return refuse(kNotInitialized, "the handle was not created");
  auto op_ok = [](int op) { return op == kOpN || op == kOpT || op == kOpC; };
  if (!op_ok(transa) || !op_ok(transb)) return refuse(kInvalidValue, "transa/transb must be N, T or C");
  if (m < 0 || n < 0 || k < 0 || batch_count < 0)
    return refuse(kInvalidValue, "negative dimension (m " + std::to_string(m) + ", n " + std::to_string(n) + ", k " +
                                     std::to_string(k) + ", batch " + std::to_string(batch_count) + ")");
  const int a_rows = transa == kOpN ? m : k, b_rows = transb == kOpN ? k : n;
  if (lda < std::max(1, a_rows)) return refuse(kInvalidValue, "lda " + std::to_string(lda) + " < max(1, " + std::to_string(a_rows) + ")");
  if (ldb < std::max(1, b_rows)) return refuse(kInvalidValue, "ldb " + std::to_string(ldb) + " < max(1, " + std::to_string(b_rows) + ")");
  if (ldc < std::max(1, m)) return refuse(kInvalidValue, "ldc " + std::to_string(ldc) + " < max(1, " + std::to_string(m) + ")");
  if (alpha == nullptr || beta == nullptr) return refuse(kInvalidValue, "alpha and beta must be given (host pointer mode)");
  if (a_type != CUDA_R_32F || b_type != CUDA_R_32F || c_type != CUDA_R_32F)
    return refuse(kNotSupported, "the stand-in takes CUDA_R_32F matrices only");
  if (compute_type != kCompute32F && compute_type != kCompute32FFast16BF)
    return refuse(kNotSupported, "compute type " + std::to_string(compute_type) + " is not emulated (32F and 32F_FAST_16BF are)");
  if (!(algo == -1 || (algo >= 0 && algo <= 23) || (algo >= 99 && algo <= 115)))
    return refuse(kInvalidValue, "no such algorithm " + std::to_string(algo));
  // Strided batches whose outputs overlap: cuBLAS leaves the result undefined.
  if (batch_count > 1 && m > 0 && n > 0 && stride_c < (long long)ldc * (n - 1) + m)
    return refuse(kInvalidValue, "batch outputs overlap (stride_c " + std::to_string(stride_c) + ")");
  if (m == 0 || n == 0 || batch_count == 0) return kSuccess;

  const float alpha_v = *static_cast<const float*>(alpha), beta_v = *static_cast<const float*>(beta);
  const Operand A{static_cast<const float*>(a), a_rows, transa == kOpN ? k : m, lda, stride_a, "A"};
  const Operand B{static_cast<const float*>(b), b_rows, transb == kOpN ? n : k, ldb, stride_b, "B"};
  float* C = static_cast<float*>(c);
  const bool bf16 = compute_type == kCompute32FFast16BF;
  const std::string what = "cublasGemmStridedBatchedEx " + std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k);
  const cudaError_t queued = stow::emu::queue_library_work(handle->stream, what, [=] {
    for (const Operand* o : {&A, &B})
      if (k > 0 && !stow::emu::is_device_range(o->data, size_t(o->span(batch_count)) * 4))
        throw std::runtime_error(std::string("operand ") + o->name + " is not wholly in device memory (an illegal address)");
    if (!stow::emu::is_device_range(C, size_t((batch_count - 1) * stride_c + (long long)(n - 1) * ldc + m) * 4))
      throw std::runtime_error("C is not wholly in device memory (an illegal address)");
    const auto ta = transa == kOpN ? CblasNoTrans : CblasTrans, tb = transb == kOpN ? CblasNoTrans : CblasTrans;
    for (int i = 0; i < batch_count; i++) {
      float* Ci = C + i * stride_c;
      if (k == 0) {  // an empty sum: C = beta C
        for (int col = 0; col < n; col++)
          for (int r = 0; r < m; r++) Ci[(long long)col * ldc + r] = beta_v == 0.0f ? 0.0f : beta_v * Ci[(long long)col * ldc + r];
        continue;
      }
      if (bf16) {
        const std::vector<float> ai = rounded_bf16(A, i), bi = rounded_bf16(B, i);
        cblas_sgemm(CblasColMajor, ta, tb, m, n, k, alpha_v, ai.data(), A.rows, bi.data(), B.rows, beta_v, Ci, ldc);
      } else {
        cblas_sgemm(CblasColMajor, ta, tb, m, n, k, alpha_v, A.data + i * A.stride, lda, B.data + i * B.stride, ldb, beta_v,
                    Ci, ldc);
      }
    }
  });
  return queued == cudaSuccess ? kSuccess : refuse(kExecutionFailed, cudaGetErrorString(queued));
}
