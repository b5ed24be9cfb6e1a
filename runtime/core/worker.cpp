#include "worker.h"

#include <chrono>
#include <exception>

#include "ctx.h"

namespace stow {

Worker::Worker() : thread_([this] { loop(); }) {}

Worker::~Worker() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

int64_t Worker::submit(std::function<void()> job) {
  std::lock_guard<std::mutex> lock(mu_);
  queue_.push_back(std::move(job));
  cv_.notify_all();
  return ++submitted_;
}

double Worker::wait(int64_t ticket) {
  auto start = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return finished_ >= ticket || !error_.empty(); });
  if (!error_.empty()) throw Error(error_);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void Worker::loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;
    std::function<void()> job = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    std::string failure;
    try {
      job();
    } catch (const std::exception& e) {
      failure = e.what();
    }
    lock.lock();
    if (!failure.empty() && error_.empty()) error_ = failure;
    finished_++;
    cv_.notify_all();
  }
}

}  // namespace stow
