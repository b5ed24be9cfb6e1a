#include "profile.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "ctx.h"

namespace stow {

void NodeProfile::write(const std::string& plan_hash, const std::vector<double>& step_seconds) const {
  std::string tmp = path_ + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) throw Error("cannot write the profile " + tmp + ": " + std::strerror(errno));
  std::fprintf(f, "{\"plan\":\"%s\",\"steps\":%lld,\"step_seconds\":[", plan_hash.c_str(), (long long)steps_);
  for (size_t i = 0; i < step_seconds.size(); i++) std::fprintf(f, "%s%.9g", i ? "," : "", step_seconds[i]);
  std::fprintf(f, "],\"node_seconds\":[");
  for (size_t i = 0; i < seconds_.size(); i++) std::fprintf(f, "%s%.9g", i ? "," : "", seconds_[i] / double(steps_));
  std::fprintf(f, "]}\n");
  bool ok = std::fflush(f) == 0;
  ok = std::fclose(f) == 0 && ok;
  if (!ok || std::rename(tmp.c_str(), path_.c_str()) != 0)
    throw Error("cannot write the profile " + path_ + ": " + std::strerror(errno));
}

}  // namespace stow
