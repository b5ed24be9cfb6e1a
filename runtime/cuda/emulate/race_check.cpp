#include "race_check.h"

#include <map>
#include <mutex>

namespace stow::emu::race {
namespace {

struct Segment {
  uintptr_t hi = 0;
  Op writer{-1, 0, nullptr};
  std::vector<Op> readers;  // the latest read of each agent since the write
};

std::mutex lock;
std::map<uintptr_t, Segment> segments;  // disjoint, keyed by their start

// Makes x a segment boundary, if a segment spans it.
void split(uintptr_t x) {
  auto it = segments.upper_bound(x);
  if (it == segments.begin()) return;
  --it;
  if (it->first < x && x < it->second.hi) {
    Segment tail = it->second;
    it->second.hi = x;
    segments.emplace(x, std::move(tail));
  }
}

bool ordered(const Op& earlier, const Op& later, const Clock& seen) {
  return earlier.agent < 0 || earlier.agent == later.agent || seen.at(earlier.agent) >= earlier.epoch;
}

std::string race_text(const Op& now, bool now_writes, const Op& before, bool before_wrote, uintptr_t lo, uintptr_t hi,
                      const std::string& (*where)(uintptr_t)) {
  return "race on " + where(lo) + " (" + std::to_string(hi - lo) + " bytes): " + *now.what + (now_writes ? " writes" : " reads") +
         " it, and " + *before.what + (before_wrote ? " wrote" : " read") +
         " it with no event or synchronisation ordering the two";
}

}  // namespace

std::string record(const Op& op, const Clock& seen, const std::vector<Use>& uses, const std::string& (*where)(uintptr_t)) {
  std::lock_guard<std::mutex> hold(lock);
  std::string race;
  for (const Use& u : uses) {
    if (u.hi <= u.lo) continue;
    split(u.lo);
    split(u.hi);
    // Gaps (bytes nobody touched yet) become segments of their own.
    uintptr_t at = u.lo;
    auto it = segments.lower_bound(u.lo);
    while (at < u.hi) {
      if (it == segments.end() || it->first > at) {
        const uintptr_t end = it == segments.end() ? u.hi : std::min(u.hi, it->first);
        Segment gap;
        gap.hi = end;
        it = segments.emplace_hint(it, at, std::move(gap));
      }
      Segment& s = it->second;
      if (race.empty() && !ordered(s.writer, op, seen)) race = race_text(op, u.write, s.writer, true, it->first, s.hi, where);
      if (u.write) {
        for (const Op& r : s.readers)
          if (race.empty() && !ordered(r, op, seen)) race = race_text(op, true, r, false, it->first, s.hi, where);
        s.writer = op;
        s.readers.clear();
      } else {
        bool replaced = false;
        for (Op& r : s.readers)
          if (r.agent == op.agent) {
            r = op;
            replaced = true;
          }
        if (!replaced) s.readers.push_back(op);
      }
      at = s.hi;
      ++it;
    }
  }
  return race;
}

void forget(uintptr_t lo, uintptr_t hi) {
  std::lock_guard<std::mutex> hold(lock);
  split(lo);
  split(hi);
  segments.erase(segments.lower_bound(lo), segments.lower_bound(hi));
}

}  // namespace stow::emu::race
