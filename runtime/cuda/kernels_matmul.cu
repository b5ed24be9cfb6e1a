// Matrix products on cuBLAS (loaded at run time, cublas.h). The arena is row-major and cuBLAS
// column-major: a row-major [M, N] matrix is the column-major [N, M] matrix of its transpose, so
// out = op(a) op(b) is computed as out^T = op(b)^T op(a)^T, with b as cuBLAS's first operand.
#include <climits>
#include <string>

#include "launch.h"

namespace stow::cuda {

void gemm(const Ctx& c, float* out, int64_t ld_out, const GemmOperand& a, const GemmOperand& b, int64_t M, int64_t N,
          int64_t K, float beta, Precision precision, int64_t batch, int64_t out_stride) {
  for (int64_t d : {M, N, K, batch, ld_out, a.ld, b.ld})
    if (d > INT_MAX)
      throw Error("internal: matmul dimensions " + std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K) +
                  " exceed cuBLAS's 32-bit limit (node " + c.node + ")");
  const Runtime& rt = runtime(c);
  const float one = 1.0f;
  const int compute = precision == BF16 ? Cublas::kCompute32FFast16BF : Cublas::kCompute32F;
  const Cublas::Status status = rt.blas().gemm_strided_batched(
      rt.blas_handle(), b.transposed ? Cublas::kOpT : Cublas::kOpN, a.transposed ? Cublas::kOpT : Cublas::kOpN, int(N),
      int(M), int(K), &one, b.data, CUDA_R_32F, int(b.ld), b.stride, a.data, CUDA_R_32F, int(a.ld), a.stride, &beta, out,
      CUDA_R_32F, int(ld_out), out_stride, int(batch), compute, Cublas::kGemmDefault);
  if (status != 0)
    throw Error("cuBLAS matmul " + std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K) + " failed with status " +
                std::to_string(status) + " (node " + c.node + ")");
}

void matmul(Ctx& c, float* out, const float* a, const float* bm, int64_t batch, int64_t M, int64_t N, int64_t K,
            bool ta, bool tb, int64_t a_stride, int64_t b_stride, Precision precision) {
  c.touch(out, batch * M * N * 4);
  if (M == 0 || N == 0 || batch == 0) return;
  if (K == 0) {  // an empty sum: the contract says zeros
    cuda::fill(c, out, batch * M * N, 0.0f);
    return;
  }
  // Leading dimensions of the stored row-major matrices: a is [M, K] or, transposed, [K, M].
  gemm(c, out, N, {a, ta ? M : K, ta, a_stride}, {bm, tb ? K : N, tb, b_stride}, M, N, K, 0.0f, precision, batch, M * N);
}

}  // namespace stow::cuda
