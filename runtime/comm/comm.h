// The communicator of a tensor-parallel job: one process per rank, every rank running the same plan.
// One interface, chosen at link time: comm_single.cpp (one rank, no MPI, the default for every plan
// with --tp 1) and mpi/comm_mpi.cpp (OpenMPI; linked only into --tp > 1 builds). runtime/comm/ holds
// these host communicators, which every backend links (codegen/build.ts). The CUDA backend adds
// cuda/comm_nccl.h for the kernels' collectives on GPU memory, on top of the MPI one; NCCL stays in
// runtime/cuda/ because it is CUDA code (.cu files nvcc compiles, queued on the CUDA runtime's compute
// stream, loaded at run time beside cuBLAS by cuda/dynload) that only the CUDA backend builds, and its
// emulated stand-in lives with the rest of the emulation (cuda/emulate/mpi/). Calls are collective:
// every rank makes the same ones in the same order, from one thread.
#pragma once
#include <cstdint>
#include <memory>

namespace stow {

enum class Reduce { Sum, Max };

class Comm {
 public:
  virtual ~Comm() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // In place: every rank ends with the sum (or max) over the ranks of buf[0, n).
  virtual void all_reduce(float* buf, int64_t n, Reduce op) = 0;
  // recv receives size() blocks of `bytes`, rank 0's first. In place when send is this rank's block of recv.
  virtual void all_gather(const void* send, void* recv, int64_t bytes) = 0;
  // send holds size() blocks of n floats; recv receives the sum over the ranks of block rank().
  virtual void reduce_scatter(const float* send, float* recv, int64_t n) = 0;
  virtual void broadcast(void* buf, int64_t bytes, int root) = 0;
  // all_gather, reduce_scatter (not in place) and all_reduce (in place, a sum) that run beside the
  // caller's work: each returns a ticket (>= 1), and the buffers are the collective's until
  // finish(ticket) returns. Started ones run
  // in the order started, and every rank starts the same ones in the same order. A communicator with
  // nothing to overlap runs them at once (these defaults).
  virtual int64_t start_all_gather(const void* send, void* recv, int64_t bytes) {
    all_gather(send, recv, bytes);
    return 1;
  }
  virtual int64_t start_reduce_scatter(const float* send, float* recv, int64_t n) {
    reduce_scatter(send, recv, n);
    return 1;
  }
  virtual int64_t start_all_reduce(float* buf, int64_t n) {
    all_reduce(buf, n, Reduce::Sum);
    return 1;
  }
  virtual void finish(int64_t /*ticket*/) {}
  // Lets the collectives in flight move on (MPI progresses them only inside its calls).
  virtual void progress() {}
  // Like all_gather, but only `root` receives (checkpoints, per-rank statistics); recv may be null elsewhere.
  virtual void gather(const void* send, void* recv, int64_t bytes, int root) = 0;
  // A communicator of the ranks that give the same color, ordered by key (MPI_Comm_split): the job's
  // tensor-parallel and data-parallel groups. Collective over every rank of this one.
  virtual std::unique_ptr<Comm> split(int color, int key) = 0;
  // Ends every rank of the job now: a failure on one rank must not leave the others waiting for it.
  [[noreturn]] virtual void abort(int code) = 0;
};

// The process's communicator, made on first use (MPI is initialised then, and finalised at exit).
Comm& process_comm();

}  // namespace stow
