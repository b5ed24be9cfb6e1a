// The CUDA backend's state behind Ctx::gpu: a compute stream that runs the kernels in program order,
// two copy streams (host to device, device to host) with events for the offload schedule's copies, a
// host worker for AdamW on offloaded chunks, cuBLAS, and a small scratch buffer for reductions. The disk
// tier's threads (a reader and a writer for chunks' copies, the disk pipeline for host AdamW) and the
// stream that disk reads go to the device on start on first use: a plan without a disk tier starts none.
// Generated code never sees these types: it calls the launch wrappers of kernels.h.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/ctx.h"
#include "cublas.h"
#include "core/disk_pipeline.h"
#include "core/host_threads.h"
#include "core/transfer_engine.h"

namespace stow::cuda {

// Throws stow::Error("CUDA error in <what>: <message>") unless e is cudaSuccess.
void check(cudaError_t e, const std::string& what);

class Runtime {
 public:
  explicit Runtime(int host_threads);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  cudaStream_t compute() const { return compute_; }
  const Cublas& blas() const { return blas_; }
  Cublas::Handle blas_handle() const { return blas_handle_; }
  int host_threads() const { return host_threads_; }
  // The pool a host task spreads AdamW over (from inside the task only).
  HostThreads& host_pool() { return host_pool_; }

  // An asynchronous copy that starts once the compute queued so far has finished (the destination's
  // previous readers, or the source's writer), on the copy stream of its direction. Returns its ticket.
  int64_t copy_async(void* dst, const void* src, int64_t bytes, bool to_device);
  // Compute queued from now on waits for the copy (the IR's `wait`); the host does not block.
  void wait(int64_t ticket);
  // A copy to the device of `bytes` held in the disk tier from `offset` (a whole block), read ahead off
  // the compute thread: the disk reader reads the whole blocks into `stage`, then queues the copy on its
  // own stream, after the compute queued so far (as copy_async). Returns the copy's ticket at once; a
  // wait on it first blocks the host until the copy is queued, so the compute stream never waits on an
  // event not yet recorded. One staging buffer serves every such copy: the reader starts the next read
  // only once the previous copy has landed.
  int64_t copy_from_disk(void* dst, DiskTier& disk, int64_t offset, void* stage, int64_t bytes);
  // Host work that runs on the host worker once the copy `after` has arrived.
  void host_task(int64_t after, std::function<void()> job);
  // Host AdamW of model data on disk through the disk pipeline, once the copy `after` has arrived (and,
  // for a gradient on disk, been written out).
  void disk_update(int64_t after, DiskTier& disk, const DiskStages& stages, DiskUpdate update);
  // A gradient kept on disk: copied into `stage` on the device-to-host stream, then, off the compute
  // thread, handed to `landed` (the gradient norm's sums) and written at `offset` (write-behind). The
  // host blocks only when the stage's previous gradient is not written out yet. Returns the copy's ticket.
  int64_t copy_to_disk(DiskTier& disk, int64_t offset, void* stage, const void* src, int64_t bytes,
                       std::function<void(const void* stage)> landed);
  // Blocks until every gradient queued for disk is written (before the gradient norm reads their sums).
  void finish_disk_writes() {
    if (disk_writer_) disk_writer_->wait(last_disk_write_);
  }
  // Blocks until compute, copies and host work are done; the time spent after compute finished is
  // counted as waiting for transfers. Tickets start again from 1 afterwards.
  void drain();

  // A copy that follows the compute queued so far and has finished when this returns. It runs on the
  // compute stream: cudaMemcpy would run on the legacy stream, which the compute stream does not wait
  // for, and may return before a copy from pageable memory has landed.
  void copy_now(void* dst, const void* src, int64_t bytes, cudaMemcpyKind kind, const std::string& what);

  // Device memory for a kernel's partial results, valid until the next call (growing it frees the old
  // buffer, which waits for every kernel in flight). Outside the plan's arena; a few MiB at most.
  void* scratch(int64_t bytes);

  int64_t h2d_bytes = 0, d2h_bytes = 0;
  double wait_seconds = 0;

 private:
  struct Copy {
    cudaEvent_t ready, done;
    bool from_disk;  // queued by the disk reader
  };
  Copy& copy_slot(int64_t ticket);
  // Made on first use, from the compute thread.
  HostThreads& disk_write_io();
  Worker& disk_writer();
  Worker& disk_reader();
  DiskPipeline& disk_pipeline();
  // Blocks until the disk reader has queued the copy with this ticket (or failed: then rethrows).
  void wait_queued(int64_t ticket);

  int host_threads_;
  cudaStream_t compute_ = nullptr, to_device_ = nullptr, to_host_ = nullptr;
  Cublas blas_{};
  Cublas::Handle blas_handle_ = nullptr;
  void* blas_workspace_ = nullptr;
  std::vector<Copy> copies_;  // events of tickets 1, 2, ... (reused after each drain)
  int64_t tickets_ = 0;
  void* scratch_ = nullptr;
  int64_t scratch_bytes_ = 0;
  HostThreads host_pool_;
  Worker host_;  // its jobs wait on the events above and use the pool
  // Each pool before the worker whose jobs use it, so that the worker is destroyed (drained) first.
  std::unique_ptr<HostThreads> disk_write_io_, disk_read_io_;
  std::unique_ptr<Worker> disk_writer_;  // gradients' writes to disk, each after its copy's event
  int64_t last_disk_write_ = 0;
  std::unique_ptr<Worker> disk_reader_;  // chunks' reads from disk and their copies to the device
  cudaStream_t from_disk_ = nullptr;     // the copies the disk reader queues
  // The handshake with the disk reader: the last ticket it has queued a copy for (they come in order),
  // and the first error it met.
  std::mutex queued_mu_;
  std::condition_variable queued_cv_;
  int64_t disk_queued_ = 0;
  std::string disk_read_error_;
  std::unique_ptr<DiskPipeline> disk_;  // last: it queues jobs on host_
};

// The runtime of the session running this node.
Runtime& runtime(const Ctx& c);

// After a kernel launch: a bad launch configuration is an error naming the kernel and the node.
void check_launch(const Ctx& c, const char* kernel);

// Blocks for 1-D grid-stride kernels: enough to fill the GPU, never more than the work needs.
inline unsigned grid_for(int64_t n, int block) {
  const int64_t blocks = (n + block - 1) / block;
  return unsigned(blocks < 1 ? 1 : blocks > 65536 ? 65536 : blocks);
}

}  // namespace stow::cuda
