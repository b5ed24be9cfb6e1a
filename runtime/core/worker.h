// A FIFO of jobs run by one thread, waited on by ticket: the transfer engine's link and host workers,
// the disk pipeline's reader and writer.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace stow {

// A FIFO of jobs run by one thread. Ticket k is done once k jobs have finished.
class Worker {
 public:
  Worker();
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  int64_t submit(std::function<void()> job);
  // Blocks until the job with this ticket (and every earlier one) has run; returns the seconds blocked.
  // A job that threw makes every later wait rethrow its message.
  double wait(int64_t ticket);
  double drain() { return wait(submitted_); }

 private:
  void loop();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  int64_t submitted_ = 0;
  int64_t finished_ = 0;
  bool stop_ = false;
  std::string error_;
  std::thread thread_;
};

}  // namespace stow
