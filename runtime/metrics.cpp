#include "metrics.h"

#include <cerrno>
#include <cmath>
#include <cstring>

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

MetricsFile::MetricsFile(const std::string& path, bool append) : path_(path) {
  file_ = std::fopen(path.c_str(), append ? "a" : "w");
  if (file_ == nullptr) throw Error("cannot open metrics file " + path + ": " + std::strerror(errno));
}

MetricsFile::~MetricsFile() { std::fclose(file_); }

void MetricsFile::write(const StowStepResult& r, const std::string& extra) {
  std::string line = metrics_json(r, extra) + "\n";
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0)
    throw Error("cannot write metrics file " + path_ + ": " + std::strerror(errno));
}

}  // namespace stow
