// The emulated CUDA target's race checker, what compute-sanitizer's racecheck does across streams: every
// byte range remembers the operation that last wrote it and the operations that read it since, and an
// operation that touches a range another stream used is an error unless the two are ordered.
//
// Order is happens-before, kept with vector clocks, so a race is found whether or not it shows in the
// timing of a run: each agent (a stream, or a host thread) counts its operations, and its clock says how
// far it has seen every other agent. An operation on a stream comes after the stream's earlier work and
// after whatever the enqueuing host thread had seen; cudaStreamWaitEvent joins the clock the event
// captured when recorded; a host synchronisation joins the stream's or event's clock into the host's.
// The device API (device_api.cpp) keeps the clocks, under its own lock; this file keeps the ranges.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace stow::emu::race {

class Clock {
 public:
  uint64_t at(int agent) const { return size_t(agent) < t_.size() ? t_[size_t(agent)] : 0; }
  void set(int agent, uint64_t time) {
    if (size_t(agent) >= t_.size()) t_.resize(size_t(agent) + 1, 0);
    t_[size_t(agent)] = time;
  }
  void join(const Clock& other) {
    if (other.t_.size() > t_.size()) t_.resize(other.t_.size(), 0);
    for (size_t i = 0; i < other.t_.size(); i++)
      if (other.t_[i] > t_[i]) t_[i] = other.t_[i];
  }

 private:
  std::vector<uint64_t> t_;
};

// One operation: agent's epoch-th, described for messages ("the kernel attention_fwd of node ...").
struct Op {
  int agent;
  uint64_t epoch;
  std::shared_ptr<const std::string> what;
};

struct Use {
  uintptr_t lo, hi;  // [lo, hi)
  bool write;
};

// Checks op's uses against earlier operations of other agents, given op's clock (`seen`), then records
// them. Returns the first race as a message ("" when none); a racing op is still recorded.
std::string record(const Op& op, const Clock& seen, const std::vector<Use>& uses, const std::string& (*where)(uintptr_t));

// Memory that was freed: its history goes.
void forget(uintptr_t lo, uintptr_t hi);

}  // namespace stow::emu::race
