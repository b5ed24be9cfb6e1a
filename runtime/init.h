// Seeded parameter initialisation. Every parameter draws from its own random stream, derived from the
// seed and the parameter's index, so the values do not depend on the thread count or on the order in
// which parameters are visited.
#pragma once
#include <cstdint>

#include "plan.h"

namespace stow {

// Writes every parameter of the plan into the model region (the arena, or the host region when model
// data is offloaded): normal(0, std), zeros or ones as the plan says.
void init_parameters(const PlanDesc& plan, uint8_t* arena, uint8_t* host, uint64_t seed);

}  // namespace stow
