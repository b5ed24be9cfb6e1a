// The per-step metrics file: one JSON object per line, flushed after every step so that a crash or a
// kill leaves every finished step on disk. A resumed run appends to the file of the run it continues,
// after the lines of the steps its checkpoint holds.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>

#include "stow_abi.h"

namespace stow {

class MetricsFile {
 public:
  // resumed_step < 0: a new file. Else the run continues a checkpoint of that step: lines of later steps
  // are cut. Throws stow::Error when the file cannot be opened.
  MetricsFile(const std::string& path, int64_t resumed_step);
  ~MetricsFile();
  MetricsFile(const MetricsFile&) = delete;
  MetricsFile& operator=(const MetricsFile&) = delete;

  // {"step","loss","lr","grad_norm" (null when NaN),"tokens","tokens_per_s","step_seconds",
  //  "device_peak_bytes","host_peak_bytes"}
  // `extra`: more fields, as JSON object members without braces (a tensor-parallel job's per-rank ones).
  void write(const StowStepResult& r, const std::string& extra = "");

 private:
  std::string path_;
  FILE* file_;
};

// One metrics line without the newline; floats are printed with 9 significant digits, enough to read
// back the exact float32.
std::string metrics_json(const StowStepResult& r, const std::string& extra = "");

}  // namespace stow
