#include "transfer_engine.h"

#include <chrono>
#include <cstring>
#include <exception>

#include "ctx.h"

namespace stow {

// A copy's ticket is its worker's ticket times two, plus one for the device-to-host direction.
static int64_t link_ticket(int64_t worker_ticket, bool to_device) { return 2 * worker_ticket + (to_device ? 0 : 1); }

double TransferEngine::wait_link(int64_t ticket) {
  return (ticket % 2 == 0 ? to_device_ : to_host_).wait(ticket / 2);
}

std::function<void()> TransferEngine::traced(std::function<void()> job, int64_t node, int stream) {
  std::lock_guard<std::mutex> lock(spans_mu_);
  if (spans_ == nullptr) return job;
  return [this, job = std::move(job), node, stream, spans = spans_, origin = origin_] {
    const auto since = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - origin).count(); };
    const double start = since();
    job();
    const double end = since();
    std::lock_guard<std::mutex> lock(spans_mu_);
    spans->push_back({node, stream, start, end});
  };
}

HostThreads& TransferEngine::read_io() {
  if (!read_io_) read_io_ = std::make_unique<HostThreads>(kDiskRequests);
  return *read_io_;
}

HostThreads& TransferEngine::write_io() {
  if (!write_io_) write_io_ = std::make_unique<HostThreads>(kDiskRequests);
  return *write_io_;
}

DiskPipeline& TransferEngine::pipeline() {
  if (!disk_) disk_ = std::make_unique<DiskPipeline>(host_, kDiskRequests);
  return *disk_;
}

int64_t TransferEngine::copy(void* dst, const void* src, int64_t bytes, bool to_device, int64_t node) {
  (to_device ? h2d_bytes : d2h_bytes) += bytes;
  const double rate = rate_;
  auto job = [=] {
    auto start = std::chrono::steady_clock::now();
    std::memcpy(dst, src, size_t(bytes));
    // The link is busy for bytes / rate seconds, however fast memcpy was.
    if (rate > 0) std::this_thread::sleep_until(start + std::chrono::duration<double>(double(bytes) / rate));
  };
  const int64_t ticket = (to_device ? to_device_ : to_host_).submit(traced(job, node, to_device ? JobSpan::H2D : JobSpan::D2H));
  return link_ticket(ticket, to_device);
}

int64_t TransferEngine::copy_from_disk(void* dst, DiskTier& disk, int64_t offset, void* stage, int64_t bytes, int64_t node) {
  h2d_bytes += bytes;
  const double rate = rate_;
  HostThreads* io = &read_io();
  auto job = [=, &disk] {
    disk.read(io, offset, stage, DiskTier::span(offset, bytes));
    auto start = std::chrono::steady_clock::now();
    std::memcpy(dst, stage, size_t(bytes));
    if (rate > 0) std::this_thread::sleep_until(start + std::chrono::duration<double>(double(bytes) / rate));
  };
  return link_ticket(to_device_.submit(traced(job, node, JobSpan::H2D)), true);
}

int64_t TransferEngine::copy_to_disk(DiskTier& disk, int64_t offset, const void* src, void* stage, int64_t bytes,
                                     std::function<void(const void*)> landed, int64_t node) {
  d2h_bytes += bytes;
  const double rate = rate_;
  HostThreads* io = &write_io();
  auto job = [=, &disk, landed = std::move(landed)] {
    auto start = std::chrono::steady_clock::now();
    std::memcpy(stage, src, size_t(bytes));
    if (rate > 0) std::this_thread::sleep_until(start + std::chrono::duration<double>(double(bytes) / rate));
    landed(stage);
    disk.write(io, offset, stage, DiskTier::span(offset, bytes));
  };
  return link_ticket(to_host_.submit(traced(job, node, JobSpan::D2H)), false);
}

int64_t TransferEngine::host_task(int64_t after, std::function<void()> job, int64_t node) {
  // The span starts once the gradient's copy is in: the time AdamW itself ran.
  return host_.submit([this, after, job = traced(std::move(job), node, JobSpan::HOST)] {
    if (after > 0) wait_link(after);
    job();
  });
}

void TransferEngine::disk_update(int64_t after, DiskTier& disk, const DiskStages& stages, DiskUpdate update, int64_t node) {
  update.gradient_in = [this, after] {
    if (after > 0) wait_link(after);
  };
  pipeline().submit(disk, stages, update, [this, node](std::function<void()> job) { return traced(std::move(job), node, JobSpan::HOST); });
}

}  // namespace stow
