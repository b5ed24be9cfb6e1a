// Seeded parameter initialisation. Every parameter draws from its own random stream, derived from the
// seed and the parameter's index, so the values do not depend on the thread count or on the order in
// which parameters are visited.
#pragma once
#include <cstdint>

#include "host_pool.h"
#include "plan.h"

namespace stow {

// Writes every parameter of the plan into the model region (the arena, or the host region when model
// data is offloaded; not those on disk, which the session draws with init_parameter): normal(0,
// std), zeros or ones as the plan says. A sharded parameter gets `rank`'s
// part of the full tensor that a single-process run draws (its full tensor is staged in `pool`).
void init_parameters(const PlanDesc& plan, uint8_t* arena, uint8_t* host, uint64_t seed, int rank, HostPool& pool);

// Parameter `index` into `out` as init_parameters draws it: the whole tensor, or under --tp `rank`'s part
// of it (ZeRO 3 shards its chunk from there).
void init_parameter(const PlanDesc& plan, int index, float* out, uint64_t seed, int rank, HostPool& pool);

}  // namespace stow
