// The part of cuBLAS the CUDA backend calls, declared here from NVIDIA's cuBLAS documentation and
// resolved at run time (dynload.h), so that building needs neither cuBLAS's headers nor its library.
// Enumerations are passed as the ints their C enums are.
#pragma once
#include <cuda_runtime.h>
#include <library_types.h>

#include <cstddef>

namespace stow::cuda {

struct Cublas {
  using Handle = struct cublasContext*;  // cublasHandle_t
  using Status = int;                    // cublasStatus_t; 0 is CUBLAS_STATUS_SUCCESS
  static constexpr int kOpN = 0, kOpT = 1;  // cublasOperation_t
  // cublasComputeType_t: fp32 arithmetic, or fp32 accumulation of products whose inputs cuBLAS rounds
  // to bfloat16 (tensor cores).
  static constexpr int kCompute32F = 68, kCompute32FFast16BF = 75;
  static constexpr int kGemmDefault = -1;  // cublasGemmAlgo_t CUBLAS_GEMM_DEFAULT

  Status (*create)(Handle*);
  Status (*destroy)(Handle);
  Status (*set_stream)(Handle, cudaStream_t);
  Status (*set_workspace)(Handle, void*, size_t);
  // Column-major C_i = alpha op(A_i) op(B_i) + beta C_i for i < batch_count, X_i = X + i * stride_X.
  Status (*gemm_strided_batched)(Handle, int transa, int transb, int m, int n, int k, const void* alpha,
                                 const void* a, cudaDataType a_type, int lda, long long stride_a, const void* b,
                                 cudaDataType b_type, int ldb, long long stride_b, const void* beta, void* c,
                                 cudaDataType c_type, int ldc, long long stride_c, int batch_count, int compute_type,
                                 int algo);

  // Loads libcublas (the CUDA 13 or 12 soname) and resolves the functions above.
  static Cublas load();
};

}  // namespace stow::cuda
