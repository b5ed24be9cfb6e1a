// The positions of a batch grouped by the table row their token id selects: a stable counting sort,
// shared by the CPU's embedding_bwd_acc and the CUDA backend's embedding gradients (which sort on the
// host and sum on the device), so that every row sums its positions in the same, increasing order.
#pragma once
#include <cstdint>
#include <cstring>

namespace stow {

// Rows [first, first + V) of a table; ids outside that range are skipped. Afterwards row v's positions
// are order[start[v]], ..., order[start[v + 1] - 1], in increasing order. start holds V + 1 entries,
// order N.
inline void positions_by_row(const int32_t* idx, int64_t N, int64_t first, int64_t V, int32_t* start, int32_t* order) {
  std::memset(start, 0, size_t(V + 1) * 4);
  auto row = [&](int64_t n) { return int64_t(idx[n]) - first; };
  for (int64_t n = 0; n < N; n++)
    if (row(n) >= 0 && row(n) < V) start[row(n) + 1]++;
  for (int64_t v = 0; v < V; v++) start[v + 1] += start[v];
  for (int64_t n = 0; n < N; n++)
    if (row(n) >= 0 && row(n) < V) order[start[row(n)]++] = int32_t(n);
  for (int64_t v = V; v > 0; v--) start[v] = start[v - 1];  // the fill advanced each start to its end
  start[0] = 0;
}

}  // namespace stow
