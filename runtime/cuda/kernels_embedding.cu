// The token embedding and its gradients. A gradient row sums the positions whose token selects it; the
// positions are grouped by row on the host (positions_by_row.h, the CPU kernel's counting sort) and
// each row is summed on the device in position order, so the result is the same on every run (and, for
// embedding_bwd_acc, the same bits as the CPU's).
#include <string>
#include <vector>

#include "launch.h"
#include "core/positions_by_row.h"

namespace stow::cuda {
namespace {

// out[v] = acc[v] (0 without acc) + the sum of dy over the positions whose id is first + v, in
// position order; ids outside [first, first + V) are skipped. `lists` is device memory for V + 1 + N
// ints. The ids are read back to the host (the compute stream waits for that), sorted there, and the
// lists go back before the summing kernel.
void add_rows(Ctx& c, const char* kernel, float* out, const float* acc, const int32_t* idx, const float* dy, int64_t N,
              int64_t C, int64_t first, int64_t V, int32_t* lists) {
  Runtime& rt = runtime(c);
  const std::string what = std::string(kernel) + " (node " + c.node + ")";
  std::vector<int32_t> ids(static_cast<size_t>(N)), sorted(static_cast<size_t>(V + 1 + N));
  rt.copy_now(ids.data(), idx, N * 4, cudaMemcpyDeviceToHost, what);
  positions_by_row(ids.data(), N, first, V, sorted.data(), sorted.data() + V + 1);
  rt.copy_now(lists, sorted.data(), int64_t(sorted.size()) * 4, cudaMemcpyHostToDevice, what);
  const int32_t* start = lists;
  const int32_t* order = lists + V + 1;
  // Each thread reads its element of acc before writing it: out may be acc.
  for_each(c, kernel, V * C, [=] __device__(int64_t i) {
    const int64_t v = i / C, j = i % C;
    const float base = acc != nullptr ? acc[i] : 0.0f;
    if (start[v] == start[v + 1]) {
      out[i] = base;
      return;
    }
    float sum = 0.0f;
    for (int32_t k = start[v]; k < start[v + 1]; k++) sum += dy[int64_t(order[k]) * C + j];
    out[i] = base + sum;
  });
}

}  // namespace

// Token ids are checked on the host before they reach the device (the data loader and stow_infer); a
// bad id that got through anyway gives a zero row rather than a read outside the table.
void embedding_fwd(Ctx& c, float* out, const float* table, const int32_t* idx, int64_t N, int64_t C, int64_t V) {
  c.touch(out, N * C * 4);
  for_each(c, "embedding_fwd", N * C, [=] __device__(int64_t i) {
    const int64_t n = i / C, v = idx[n];
    out[i] = (v >= 0 && v < V) ? table[v * C + i % C] : 0.0f;
  });
}

// The CPU kernel needs no workspace, so the sorted positions go in the runtime's scratch memory.
void embedding_bwd(Ctx& c, float* dtable, const int32_t* idx, const float* dy, int64_t N, int64_t C, int64_t V) {
  c.touch(dtable, V * C * 4);
  auto* lists = static_cast<int32_t*>(runtime(c).scratch((V + 1 + N) * 4));
  add_rows(c, "embedding_bwd", dtable, nullptr, idx, dy, N, C, 0, V, lists);
}

// The planned workspace holds the sorted positions (the CPU kernel's per-thread row sums, after them,
// go unused).
void embedding_bwd_acc(Ctx& c, float* out, const float* acc, const int32_t* idx, const float* dy, int64_t N, int64_t C,
                       int64_t V) {
  auto* lists = static_cast<int32_t*>(c.workspace((V + 1 + N) * 4));
  c.touch(out, V * C * 4);
  add_rows(c, "embedding_bwd_acc", out, acc, idx, dy, N, C, 0, V, lists);
}

// Vocabulary-parallel: this rank holds rows [rank V, (rank + 1) V) of the table.
void embedding_vp_fwd(Ctx& c, float* out, const float* table, const int32_t* idx, int64_t N, int64_t C, int64_t V,
                      int64_t vocab) {
  (void)vocab;  // ids are checked on the host before they reach the device
  c.touch(out, N * C * 4);
  const int64_t first = int64_t(c.rank) * V;
  for_each(c, "embedding_vp_fwd", N * C, [=] __device__(int64_t i) {
    const int64_t v = idx[i / C] - first;
    out[i] = (v >= 0 && v < V) ? table[v * C + i % C] : 0.0f;
  });
}

void embedding_vp_bwd(Ctx& c, float* dtable, const int32_t* idx, const float* dy, int64_t N, int64_t C, int64_t V) {
  c.touch(dtable, V * C * 4);
  auto* lists = static_cast<int32_t*>(runtime(c).scratch((V + 1 + N) * 4));
  add_rows(c, "embedding_vp_bwd", dtable, nullptr, idx, dy, N, C, int64_t(c.rank) * V, V, lists);
}

}  // namespace stow::cuda
