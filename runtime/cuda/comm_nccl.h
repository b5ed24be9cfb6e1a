// The communicator of a tensor-parallel job on the CUDA backend: the collectives of comm.h over NCCL,
// on GPU memory, queued on the compute stream in program order (they return before the GPU has run
// them). The ones started to overlap compute (start_all_gather, start_reduce_scatter: ZeRO's chunks;
// start_all_reduce: ZeRO 0 and 1's gradients)
// go on a communication stream of their own instead: each follows the compute queued before it (an
// event), and finish() makes compute queued after it wait for it (another event); the host never blocks.
// While one is in flight, a blocking collective goes behind it on the communication stream too. The
// job's ranks and the host-side calls (gathering checkpoints and statistics, aborting) stay with the
// process's host communicator (MPI, runtime/comm/mpi/comm_mpi.cpp), which also carries NCCL's
// bootstrap: rank 0 makes the unique id and broadcasts it.
#pragma once
#include <cuda_runtime.h>

#include <cstdlib>
#include <vector>

#include "comm/comm.h"
#include "nccl.h"

namespace stow::cuda {

class NcclComm final : public Comm {
 public:
  // Collective over every rank of `host`; loads NCCL (a missing library is an error naming where it looked).
  NcclComm(Comm& host, cudaStream_t stream);
  ~NcclComm() override;
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;

  int rank() const override { return host_.rank(); }
  int size() const override { return host_.size(); }
  void all_reduce(float* buf, int64_t n, Reduce op) override;
  void all_gather(const void* send, void* recv, int64_t bytes) override;
  void reduce_scatter(const float* send, float* recv, int64_t n) override;
  void broadcast(void* buf, int64_t bytes, int root) override;
  int64_t start_all_gather(const void* send, void* recv, int64_t bytes) override;
  int64_t start_reduce_scatter(const float* send, float* recv, int64_t n) override;
  int64_t start_all_reduce(float* buf, int64_t n) override;
  void finish(int64_t ticket) override;
  // Host memory, through the host communicator.
  void gather(const void* send, void* recv, int64_t bytes, int root) override { host_.gather(send, recv, bytes, root); }
  // Groups are made on the host communicator, before any NCCL communicator is (runtime/core/session.cpp).
  std::unique_ptr<Comm> split(int color, int key) override { return host_.split(color, key); }
  [[noreturn]] void abort(int code) override {
    host_.abort(code);
    std::_Exit(code);  // not reached; the compiler does not see through the virtual call's [[noreturn]]
  }

 private:
  void check(Nccl::Result r, const char* what) const;
  // Orders the next collective on the communication stream after the compute queued so far; its ticket.
  int64_t begin_overlapped();
  // Records the completion of the collective just queued.
  int64_t end_overlapped(int64_t ticket);
  // Queues a blocking collective (queue(stream) makes the NCCL call): on the compute stream, or behind
  // the overlapped ones still in flight.
  template <class Queue>
  void queue_in_order(Queue queue);

  struct Overlapped {
    cudaEvent_t ready, done;
  };

  Comm& host_;
  Nccl::Stream stream_;
  Nccl nccl_;
  Nccl::Comm comm_ = nullptr;
  cudaStream_t side_ = nullptr;         // the communication stream, made on first use
  std::vector<Overlapped> overlapped_;  // events of tickets 1, 2, ... (reused once none is in flight)
  int64_t started_ = 0, in_flight_ = 0;
};

}  // namespace stow::cuda
