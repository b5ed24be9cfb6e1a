#include "host_threads.h"

#include <algorithm>
#include <exception>

#include "ctx.h"

namespace stow {

HostThreads::HostThreads(int threads) {
  for (int i = 1; i < std::max(threads, 1); i++) helpers_.emplace_back([this, i] { loop(i); });
}

HostThreads::~HostThreads() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  start_.notify_all();
  for (std::thread& t : helpers_) t.join();
}

// Runs one share, keeping the first failure's message for the caller.
static void run_share(const std::function<void(int64_t, int64_t)>& work, std::pair<int64_t, int64_t> share, std::mutex& mu,
                      std::string& error) {
  if (share.first >= share.second) return;
  try {
    work(share.first, share.second);
  } catch (const std::exception& e) {
    std::lock_guard<std::mutex> lock(mu);
    if (error.empty()) error = e.what();
  }
}

void HostThreads::for_shares(int64_t count, const std::function<void(int64_t, int64_t)>& work, int64_t min_share, int64_t align) {
  if (count <= 0) return;
  const int64_t used = std::clamp<int64_t>(count / min_share, 1, size());
  if (used == 1) {
    work(0, count);
    return;
  }
  // Equal shares, each boundary rounded down to `align`; the last share takes the remainder.
  std::vector<std::pair<int64_t, int64_t>> shares(size_t(size()), {count, count});
  for (int64_t s = 0; s < used; s++) {
    const int64_t begin = s == 0 ? 0 : count * s / used / align * align;
    const int64_t end = s == used - 1 ? count : count * (s + 1) / used / align * align;
    shares[size_t(s)] = {begin, end};
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    work_ = &work;
    shares_ = shares;
    error_.clear();
    pending_ = int(helpers_.size());
    round_++;
  }
  start_.notify_all();
  run_share(work, shares[0], mu_, error_);
  std::unique_lock<std::mutex> lock(mu_);
  done_.wait(lock, [&] { return pending_ == 0; });
  work_ = nullptr;
  if (!error_.empty()) throw Error(error_);
}

void HostThreads::loop(int index) {
  int64_t seen = 0;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    start_.wait(lock, [&] { return stop_ || round_ != seen; });
    if (stop_) return;
    seen = round_;
    const auto* work = work_;
    const auto share = shares_[size_t(index)];
    lock.unlock();
    run_share(*work, share, mu_, error_);
    lock.lock();
    if (--pending_ == 0) done_.notify_one();
  }
}

}  // namespace stow
