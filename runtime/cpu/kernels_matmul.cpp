// Batched matrix product on OpenBLAS. The BLAS thread count is set by the session, not here.
#include <cblas.h>

#include <climits>

#include "kernels.h"
#include "kernels_common.h"

namespace stow {
using namespace detail;

void matmul(Ctx& c, float* out, const float* a, const float* bm, int64_t batch, int64_t M, int64_t N, int64_t K,
            bool ta, bool tb, int64_t a_stride, int64_t b_stride) {
  // Debian's OpenBLAS takes 32-bit dimensions.
  if (M > INT_MAX || N > INT_MAX || K > INT_MAX)
    fail(c, "internal: matmul dimensions " + std::to_string(M) + "x" + std::to_string(N) + "x" +
                std::to_string(K) + " exceed the BLAS limit");
  c.touch(out, batch * M * N * 4);
  if (M == 0 || N == 0) return;
  if (K == 0) {  // an empty sum: BLAS may leave out untouched, the contract says zeros
    fill(c, out, batch * M * N, 0.0f);
    return;
  }
  // Leading dimensions of the matrices as stored (row-major): a is [M, K] or, transposed, [K, M].
  const int lda = int(ta ? M : K), ldb = int(tb ? K : N);
  for (int64_t b = 0; b < batch; b++)
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(M), int(N),
                int(K), 1.0f, a + b * a_stride, lda, bm + b * b_stride, ldb, 0.0f, out + b * M * N, int(N));
}

}  // namespace stow
