// The profiled warm-up: seconds per node of the training program over a few steps, written as JSON for
// the planner (src/driver/profile.ts) to re-plan with measured costs and for `stow plan --profile` to
// set beside its predictions.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "transfer_engine.h"

namespace stow {

class NodeProfile {
 public:
  NodeProfile(std::string path, int64_t nodes, int64_t steps)
      : path_(std::move(path)), seconds_(nodes), start_(nodes, -1), end_(nodes, -1), steps_(steps) {}
  // Where the generated code adds each node's time while a profiled step runs; null otherwise.
  double* sink() { return seconds_.data(); }
  // The timeline of one step (the last profiled one is written): node starts and ends, the engine's jobs.
  double* starts() { return start_.data(); }
  double* ends() { return end_.data(); }
  std::vector<JobSpan>* spans() { return &spans_; }
  void begin_step() {
    std::fill(start_.begin(), start_.end(), -1.0);
    std::fill(end_.begin(), end_.end(), -1.0);
    spans_.clear();
  }
  int64_t steps() const { return steps_; }
  // Writes the means over `steps_` steps (atomically: a temporary file, then a rename).
  void write(const std::string& plan_hash, const std::vector<double>& step_seconds) const;

 private:
  std::string path_;
  std::vector<double> seconds_;
  std::vector<double> start_, end_;
  std::vector<JobSpan> spans_;
  int64_t steps_;
};

}  // namespace stow
