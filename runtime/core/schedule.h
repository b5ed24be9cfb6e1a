// The learning rate of a 1-based step: constant, or a linear warm-up to `lr` over `warmup_steps`
// followed by a cosine decay to `min_lr` at step `steps` (and min_lr after it). Computed in double so
// that the float handed to AdamW is the correctly rounded value of the formula.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace stow {

enum LrSchedule : int { LR_CONSTANT = 0, LR_COSINE = 1 };

inline float scheduled_lr(int schedule, int64_t step, int64_t steps, int64_t warmup_steps, double lr, double min_lr) {
  if (schedule == LR_CONSTANT) return float(lr);
  if (warmup_steps > 0 && step <= warmup_steps) return float(lr * double(step) / double(warmup_steps));
  double progress = double(step - warmup_steps) / double(std::max<int64_t>(1, steps - warmup_steps));
  progress = std::clamp(progress, 0.0, 1.0);
  const double pi = 3.14159265358979323846;
  return float(min_lr + 0.5 * (lr - min_lr) * (1.0 + std::cos(pi * progress)));
}

}  // namespace stow
