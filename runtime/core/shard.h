// A rank's part of a sharded parameter (plan.h ShardDesc) and the full tensor it comes from: how
// initialisation, --init, --resume and checkpoints move between the two, so that checkpoints hold
// whole tensors whatever the tensor-parallel degree.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "plan.h"

namespace stow {

// The parameter's shape in a checkpoint: its local shape, with the sharded axis at its full extent.
std::vector<int64_t> full_shape(const ParamDesc& p);
int64_t full_numel(const ParamDesc& p);
// Copies rank's part of `full` into `local`; padding past the full extent is set to 0.
void take_shard(const ParamDesc& p, int rank, const float* full, float* local);
// The full tensor, in order, as runs of the ranks' parts (padding left out): `run(rank, local_at, n)`
// says that the next n elements are rank's, from element local_at of its part. A checkpoint is written
// from the parts so, without assembling the full tensor.
void for_each_full_run(const ParamDesc& p, int ranks, const std::function<void(int, int64_t, int64_t)>& run);

}  // namespace stow
