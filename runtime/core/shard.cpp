#include "shard.h"

#include <algorithm>
#include <cstring>

namespace stow {

namespace {

// Runs of contiguous elements: the parameter is [outer, axis, inner]; along the axis, local index j
// of block k is full index k * full / groups + rank * per + (j - k * per), where per = local / groups.
struct Runs {
  int64_t outer = 1, inner = 1, local, per, block;
};
Runs runs_of(const ParamDesc& p) {
  Runs r;
  for (int d = 0; d < p.shard.axis; d++) r.outer *= p.shape[d];
  for (int d = p.shard.axis + 1; d < p.rank; d++) r.inner *= p.shape[d];
  r.local = p.shape[p.shard.axis];
  r.per = r.local / p.shard.groups;
  r.block = p.shard.full / p.shard.groups;
  return r;
}

template <class Copy>
void for_each_run(const ParamDesc& p, int rank, Copy copy) {
  const Runs r = runs_of(p);
  for (int64_t o = 0; o < r.outer; o++)
    for (int64_t k = 0; k < p.shard.groups; k++) {
      const int64_t start = rank * r.per;
      const int64_t kept = std::max<int64_t>(0, std::min(r.per, r.block - start));  // rows before the padding
      const int64_t local_at = (o * r.local + k * r.per) * r.inner;
      const int64_t full_at = (o * p.shard.full + k * r.block + start) * r.inner;
      copy(local_at, full_at, kept * r.inner, (r.per - kept) * r.inner);
    }
}

}  // namespace

std::vector<int64_t> full_shape(const ParamDesc& p) {
  std::vector<int64_t> shape(p.shape, p.shape + p.rank);
  if (p.shard.axis >= 0) shape[p.shard.axis] = p.shard.full;
  return shape;
}

int64_t full_numel(const ParamDesc& p) {
  int64_t n = 1;
  for (int64_t d : full_shape(p)) n *= d;
  return n;
}

void take_shard(const ParamDesc& p, int rank, const float* full, float* local) {
  if (p.shard.axis < 0) {
    std::memcpy(local, full, size_t(p.numel) * 4);
    return;
  }
  for_each_run(p, rank, [&](int64_t local_at, int64_t full_at, int64_t n, int64_t padding) {
    std::memcpy(local + local_at, full + full_at, size_t(n) * 4);
    std::memset(local + local_at + n, 0, size_t(padding) * 4);
  });
}

void for_each_full_run(const ParamDesc& p, int ranks, const std::function<void(int, int64_t, int64_t)>& run) {
  if (p.shard.axis < 0) return run(0, 0, p.numel);
  const Runs r = runs_of(p);
  for (int64_t o = 0; o < r.outer; o++)
    for (int64_t k = 0; k < p.shard.groups; k++)
      for (int rank = 0; rank < ranks; rank++) {
        const int64_t kept = std::max<int64_t>(0, std::min(r.per, r.block - rank * r.per));
        if (kept > 0) run(rank, (o * r.local + k * r.per) * r.inner, kept * r.inner);
      }
}

}  // namespace stow
