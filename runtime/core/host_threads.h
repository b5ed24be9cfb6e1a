// A small fixed pool of host threads for work on model data held in host memory (AdamW of offloaded
// chunks). The transfer engine's host worker is the one caller: it takes the first share of a range
// itself and hands the others to the pool's helpers, so a chunk's update runs on every pool thread at
// once. AdamW is bound by memory bandwidth, and one core cannot draw all of it: a second thread on the
// same sockets nearly doubles the rate (bench/RESULTS.md, host AdamW).
#pragma once
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace stow {

class HostThreads {
 public:
  // `threads` counts the caller: threads - 1 helpers are started (none for 1).
  explicit HostThreads(int threads);
  ~HostThreads();
  HostThreads(const HostThreads&) = delete;
  HostThreads& operator=(const HostThreads&) = delete;
  int size() const { return int(helpers_.size()) + 1; }

  // Runs work(begin, end) over contiguous shares of [0, count) and returns when every share is done.
  // Shares start on multiples of `align` elements (kAlign: no two threads write one cache line of a
  // float array) and hold at least `min_share` (kMinShare: a range too small to be worth waking a
  // helper runs on the caller alone). An exception in any share is rethrown here (the first one). One
  // caller at a time.
  void for_shares(int64_t count, const std::function<void(int64_t, int64_t)>& work, int64_t min_share = kMinShare,
                  int64_t align = kAlign);

  static constexpr int64_t kAlign = 16;
  // Below this many elements a share costs less than waking a helper thread (about 10 microseconds).
  static constexpr int64_t kMinShare = 1 << 14;

 private:
  void loop(int index);
  std::mutex mu_;
  std::condition_variable start_, done_;
  const std::function<void(int64_t, int64_t)>* work_ = nullptr;
  std::vector<std::pair<int64_t, int64_t>> shares_;  // this round's, share 0 the caller's
  int64_t round_ = 0;
  int pending_ = 0;
  bool stop_ = false;
  std::string error_;
  std::vector<std::thread> helpers_;
};

}  // namespace stow
