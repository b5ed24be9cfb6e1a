// The transfer engine of the CPU backend: what a GPU's copy engines and the host's spare cores do while
// the device computes. Two worker threads play the host-device link, one per direction, as PCIe is full
// duplex and a GPU has a copy engine each way (the CUDA backend's two copy streams): each runs its copies
// in order, and with a link rate set it holds each copy for bytes / rate seconds, so a plan's overlap of
// transfers with compute is real and measurable on a machine without a device. A third worker runs host
// work (AdamW on offloaded chunks), each job after the copy it depends on, spreading each over a small
// pool of host threads; AdamW of model data on disk goes through the disk pipeline, whose reads and
// writes run on their own threads around it. Jobs return tickets; waiting on a ticket is the IR's `wait`.
// The disk tier's threads start on its first use: a plan without a disk tier starts none of them.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "disk_pipeline.h"
#include "disk_tier.h"
#include "host_threads.h"
#include "worker.h"

namespace stow {

// When a job ran on its worker, in seconds since the origin handed to TransferEngine::trace: the measured
// trace's copies and host AdamW. `node` is the position of the node that submitted it.
struct JobSpan {
  enum Stream : int { H2D = 0, D2H = 1, HOST = 2 };
  int64_t node;
  int stream;
  double start, end;
};

class TransferEngine {
 public:
  // bytes_per_second (each direction's) <= 0: copies run as fast as memcpy. host_threads: the pool that
  // host work may spread over (host_task's caller counted).
  TransferEngine(double bytes_per_second, int host_threads)
      : rate_(bytes_per_second), pool_(host_threads) {}
  // Requests in flight for each of the link's and the disk pipeline's reads and writes, as the `cpu`
  // probe measures the disk.
  static constexpr int kDiskRequests = 4;
  // A copy's ticket names its direction too (see wait_copy), so the generated code holds one integer.
  int64_t copy(void* dst, const void* src, int64_t bytes, bool to_device, int64_t node = -1);
  // A copy to the device of `bytes` held in the disk tier from `offset` (a whole block): the link's
  // worker reads the whole blocks into `stage` (kDiskRequests requests in flight), then copies. Its jobs run one at a time, so one staging
  // buffer serves every such copy.
  int64_t copy_from_disk(void* dst, DiskTier& disk, int64_t offset, void* stage, int64_t bytes, int64_t node = -1);
  // The way back: `bytes` from the device into `stage`, handed to `landed` (the gradient norm's sums),
  // then written to the disk tier at `offset` (a whole block; the stage's bytes past `bytes` fill the
  // last block, which holds nothing else).
  int64_t copy_to_disk(DiskTier& disk, int64_t offset, const void* src, void* stage, int64_t bytes,
                       std::function<void(const void* stage)> landed, int64_t node = -1);
  // Host work that must follow the copy with ticket `after` (0: none).
  int64_t host_task(int64_t after, std::function<void()> job, int64_t node = -1);
  // Host AdamW of model data on disk (see DiskPipeline), its gradient's copy the one with ticket `after`.
  void disk_update(int64_t after, DiskTier& disk, const DiskStages& stages, DiskUpdate update, int64_t node = -1);
  // The threads a host task may spread its work over (from inside the task only).
  HostThreads& host_threads() { return pool_; }
  // Jobs submitted from now on append their spans here (null: stop); the session sets it for a profiled step.
  void trace(std::vector<JobSpan>* spans, std::chrono::steady_clock::time_point origin) {
    std::lock_guard<std::mutex> lock(spans_mu_);
    spans_ = spans;
    origin_ = origin;
  }
  void wait_copy(int64_t ticket) { stall_seconds += wait_link(ticket); }
  void wait_host(int64_t ticket) { stall_seconds += host_.wait(ticket); }
  void drain() { stall_seconds += to_device_.drain() + to_host_.drain() + host_.drain() + (disk_ ? disk_->drain() : 0); }

  // Per step, reset by the session: bytes each way, and how long compute waited for the engine.
  int64_t h2d_bytes = 0, d2h_bytes = 0;
  double stall_seconds = 0;

 private:
  double wait_link(int64_t ticket);
  // Runs the job, recording its span when tracing.
  std::function<void()> traced(std::function<void()> job, int64_t node, int stream);
  double rate_;
  std::mutex spans_mu_;
  std::vector<JobSpan>* spans_ = nullptr;
  std::chrono::steady_clock::time_point origin_;
  HostThreads pool_;
  // Made on first use, from the compute thread (the only caller of the methods above).
  HostThreads& read_io();
  HostThreads& write_io();
  DiskPipeline& pipeline();
  // The link's workers' disk requests in flight, one pool each: before the workers, whose jobs use them.
  std::unique_ptr<HostThreads> read_io_, write_io_;
  Worker to_device_;
  Worker to_host_;
  Worker host_;
  std::unique_ptr<DiskPipeline> disk_;  // after host_, whose jobs it queues
};

}  // namespace stow
