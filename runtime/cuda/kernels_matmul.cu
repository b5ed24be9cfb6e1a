// Batched matrix products on cuBLAS (loaded at run time, cublas.h). The arena is row-major and cuBLAS
// column-major: a row-major [M, N] matrix is the column-major [N, M] matrix of its transpose, so
// out = op(a) op(b) is computed as out^T = op(b)^T op(a)^T, with b as cuBLAS's first operand.
#include <climits>
#include <string>

#include "launch.h"

namespace stow::cuda {

void matmul(Ctx& c, float* out, const float* a, const float* bm, int64_t batch, int64_t M, int64_t N, int64_t K,
            bool ta, bool tb, int64_t a_stride, int64_t b_stride, Precision precision) {
  if (M > INT_MAX || N > INT_MAX || K > INT_MAX || batch > INT_MAX)
    throw Error("internal: matmul dimensions " + std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K) +
                " exceed cuBLAS's 32-bit limit (node " + c.node + ")");
  c.touch(out, batch * M * N * 4);
  if (M == 0 || N == 0 || batch == 0) return;
  if (K == 0) {  // an empty sum: the contract says zeros
    cuda::fill(c, out, batch * M * N, 0.0f);
    return;
  }
  const Runtime& rt = runtime(c);
  const float one = 1.0f, zero = 0.0f;
  // Leading dimensions of the stored row-major matrices: b is [K, N] or, transposed, [N, K].
  const int ldb = int(tb ? K : N), lda = int(ta ? M : K);
  const int compute = precision == BF16 ? Cublas::kCompute32FFast16BF : Cublas::kCompute32F;
  const Cublas::Status status = rt.blas().gemm_strided_batched(
      rt.blas_handle(), tb ? Cublas::kOpT : Cublas::kOpN, ta ? Cublas::kOpT : Cublas::kOpN, int(N), int(M), int(K), &one,
      bm, CUDA_R_32F, ldb, b_stride, a, CUDA_R_32F, lda, a_stride, &zero, out, CUDA_R_32F, int(N), M * N, int(batch),
      compute, Cublas::kGemmDefault);
  if (status != 0)
    throw Error("cuBLAS matmul " + std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K) + " failed with status " +
                std::to_string(status) + " (node " + c.node + ")");
}

}  // namespace stow::cuda
