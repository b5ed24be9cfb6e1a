// The profiled warm-up: seconds per node of the training program over a few steps, written as JSON for
// the planner (src/driver/profile.ts) to re-plan with measured costs and for `stow plan --profile` to
// set beside its predictions.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace stow {

class NodeProfile {
 public:
  NodeProfile(std::string path, int64_t nodes, int64_t steps) : path_(std::move(path)), seconds_(nodes), steps_(steps) {}
  // Where the generated code adds each node's time while a profiled step runs; null otherwise.
  double* sink() { return seconds_.data(); }
  int64_t steps() const { return steps_; }
  // Writes the means over `steps_` steps (atomically: a temporary file, then a rename).
  void write(const std::string& plan_hash, const std::vector<double>& step_seconds) const;

 private:
  std::string path_;
  std::vector<double> seconds_;
  int64_t steps_;
};

}  // namespace stow
