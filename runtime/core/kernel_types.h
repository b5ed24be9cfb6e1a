// The types in kernel signatures that the generic runtime hands to a plan (StepArgs in plan.h), shared
// by every backend's kernels.
#pragma once
#include <cstdint>

namespace stow {

// AdamW's hyperparameters for one step: lr already scheduled; t = 1-based step number (kernels.h adamw).
struct AdamHyper { float lr, beta1, beta2, eps, weight_decay; int64_t t; };

}  // namespace stow
