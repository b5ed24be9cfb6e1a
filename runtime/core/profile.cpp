#include "profile.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "atomic_file.h"
#include "ctx.h"

namespace stow {

void NodeProfile::write(const std::string& plan_hash, const std::vector<double>& step_seconds) const {
  AtomicFile file(path_);
  FILE* f = file.get();
  std::fprintf(f, "{\"plan\":\"%s\",\"steps\":%lld,\"step_seconds\":[", plan_hash.c_str(), (long long)steps_);
  for (size_t i = 0; i < step_seconds.size(); i++) std::fprintf(f, "%s%.9g", i ? "," : "", step_seconds[i]);
  std::fprintf(f, "],\"node_seconds\":[");
  for (size_t i = 0; i < seconds_.size(); i++) std::fprintf(f, "%s%.9g", i ? "," : "", seconds_[i] / double(steps_));
  // The last profiled step's timeline, seconds since its start; -1: the node runs no kernel.
  std::fprintf(f, "],\"timeline\":{\"node_start\":[");
  for (size_t i = 0; i < start_.size(); i++) std::fprintf(f, "%s%.9g", i ? "," : "", start_[i]);
  std::fprintf(f, "],\"node_end\":[");
  for (size_t i = 0; i < end_.size(); i++) std::fprintf(f, "%s%.9g", i ? "," : "", end_[i]);
  std::fprintf(f, "],\"jobs\":[");
  for (size_t i = 0; i < spans_.size(); i++)
    std::fprintf(f, "%s[%lld,%d,%.9g,%.9g]", i ? "," : "", (long long)spans_[i].node, spans_[i].stream, spans_[i].start, spans_[i].end);
  if (std::fprintf(f, "]}}\n") < 0) throw Error("cannot write the profile " + path_ + ": " + std::strerror(errno));
  file.commit();
}

}  // namespace stow
