#include "metrics.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <unistd.h>

#include "ctx.h"

namespace stow {

namespace {

std::string number(double v, const char* format) {
  if (!std::isfinite(v)) return "null";  // JSON has no NaN or infinity
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

}  // namespace

std::string metrics_json(const StowStepResult& r, const std::string& extra) {
  double tokens_per_s = r.seconds > 0 ? double(r.tokens) / r.seconds : 0.0;
  return "{\"step\":" + std::to_string(r.step) + ",\"loss\":" + number(r.loss, "%.9g") +
         ",\"lr\":" + number(r.lr, "%.9g") + ",\"grad_norm\":" + number(r.grad_norm, "%.9g") +
         ",\"tokens\":" + std::to_string(r.tokens) + ",\"tokens_per_s\":" + number(tokens_per_s, "%.6g") +
         ",\"step_seconds\":" + number(r.seconds, "%.6g") +
         ",\"device_peak_bytes\":" + std::to_string(r.device_peak_bytes) +
         ",\"host_peak_bytes\":" + std::to_string(r.host_peak_bytes) +
         ",\"h2d_bytes\":" + std::to_string(r.h2d_bytes) + ",\"d2h_bytes\":" + std::to_string(r.d2h_bytes) +
         ",\"device_budget_bytes\":" + std::to_string(r.device_budget_bytes) +
         ",\"transfer_wait_seconds\":" + number(r.transfer_wait_seconds, "%.6g") + (extra.empty() ? "" : ",") + extra + "}";
}

namespace {

// The length of the file's prefix that holds whole lines of steps up to `step`: what a run resumed at
// that step keeps. Steps after it (written after the checkpoint, before a crash) and a last line cut
// short by the crash are dropped, so the file never repeats a step.
long kept_length(FILE* f, int64_t step) {
  long kept = 0;
  std::string line;
  for (int c; (c = std::fgetc(f)) != EOF;) {
    if (c != '\n') {
      line += char(c);
      continue;
    }
    const char* key = "{\"step\":";
    if (line.compare(0, std::strlen(key), key) != 0 || std::strtoll(line.c_str() + std::strlen(key), nullptr, 10) > step) break;
    kept = std::ftell(f);
    line.clear();
  }
  return kept;
}

}  // namespace

MetricsFile::MetricsFile(const std::string& path, int64_t resumed_step) : path_(path) {
  file_ = std::fopen(path.c_str(), resumed_step < 0 ? "w" : "a+");
  if (file_ == nullptr) throw Error("cannot open metrics file " + path + ": " + std::strerror(errno));
  if (resumed_step < 0) return;
  std::rewind(file_);
  long kept = kept_length(file_, resumed_step);
  if (std::fflush(file_) != 0 || ftruncate(fileno(file_), kept) != 0 || std::fseek(file_, 0, SEEK_END) != 0)
    throw Error("cannot trim metrics file " + path + " to the resumed step: " + std::strerror(errno));
}

MetricsFile::~MetricsFile() { std::fclose(file_); }

void MetricsFile::write(const StowStepResult& r, const std::string& extra) {
  std::string line = metrics_json(r, extra) + "\n";
  const long before = std::ftell(file_);
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0) {
    std::string why = std::strerror(errno);
    // No half line: a disk that filled up mid-line gets the file back as it was before the step.
    std::clearerr(file_);
    if (before >= 0 && ftruncate(fileno(file_), before) == 0) std::fseek(file_, before, SEEK_SET);
    throw Error("cannot write metrics file " + path_ + " at step " + std::to_string(r.step) + ": " + why);
  }
}

}  // namespace stow
