// Token embedding lookup and its gradient.
#include <cstring>

#include "kernels.h"
#include "kernels_common.h"
#include "core/positions_by_row.h"

namespace stow {
using namespace detail;

// Checked before any parallel region: an exception must not leave an OpenMP region.
static void check_ids(Ctx& c, const int32_t* idx, int64_t N, int64_t V) {
  for (int64_t n = 0; n < N; n++)
    if (idx[n] < 0 || idx[n] >= V)
      fail(c, "embedding: token id " + std::to_string(idx[n]) + " at position " + std::to_string(n) +
                  " is outside the vocabulary of " + std::to_string(V));
}

void embedding_fwd(Ctx& c, float* out, const float* table, const int32_t* idx, int64_t N, int64_t C, int64_t V) {
  check_ids(c, idx, N, V);
  c.touch(out, N * C * 4);
#pragma omp parallel for schedule(static) num_threads(c.threads)
  for (int64_t n = 0; n < N; n++) std::memcpy(out + n * C, table + int64_t(idx[n]) * C, C * 4);
}

// Each thread owns a contiguous range of vocabulary rows: it zeroes them, then scans all positions in
// order and adds the ones that hit its rows. No two threads write the same row, and every row sums
// its positions in position order, so the result is the same for any thread count.
void embedding_bwd(Ctx& c, float* dtable, const int32_t* idx, const float* dy, int64_t N, int64_t C, int64_t V) {
  check_ids(c, idx, N, V);
  c.touch(dtable, V * C * 4);
#pragma omp parallel num_threads(c.threads)
  {
    const Span rows = thread_span(V);
    std::memset(dtable + rows.begin * C, 0, (rows.end - rows.begin) * C * 4);
    for (int64_t n = 0; n < N; n++) {
      const int64_t v = idx[n];
      if (v >= rows.begin && v < rows.end) axpy(dtable + v * C, 1.0f, dy + n * C, C);
    }
  }
}

}  // namespace stow

namespace stow {
using namespace detail;

// The positions are sorted by row (positions_by_row.h, so each row keeps position order); each
// thread then owns a range of rows and, for each hit row, sums its positions from zero in order, as
// embedding_bwd does, before adding the sum to the row. Rows never hit keep acc's values.
void embedding_bwd_acc(Ctx& c, float* out, const float* acc, const int32_t* idx, const float* dy, int64_t N, int64_t C,
                       int64_t V) {
  check_ids(c, idx, N, V);
  auto* start = static_cast<int32_t*>(c.workspace((V + 1 + N) * 4 + int64_t(c.threads) * C * 4));
  int32_t* order = start + V + 1;
  float* sums = reinterpret_cast<float*>(order + N);
  c.touch(out, V * C * 4);
  if (out != acc) std::memcpy(out, acc, size_t(V * C) * 4);
  positions_by_row(idx, N, 0, V, start, order);
#pragma omp parallel num_threads(c.threads)
  {
    const Span rows = thread_span(V);
    float* sum = sums + int64_t(omp_get_thread_num()) * C;
    for (int64_t v = rows.begin; v < rows.end; v++) {
      if (start[v] == start[v + 1]) continue;
      std::memset(sum, 0, size_t(C) * 4);
      for (int32_t k = start[v]; k < start[v + 1]; k++) axpy(sum, 1.0f, dy + int64_t(order[k]) * C, C);
      float* row = out + v * C;
      for (int64_t j = 0; j < C; j++) row[j] = row[j] + sum[j];
    }
  }
}

}  // namespace stow
