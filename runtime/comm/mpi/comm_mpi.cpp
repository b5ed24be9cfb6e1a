// The MPI communicator (OpenMPI) of the CPU backend: the job's ranks are MPI_COMM_WORLD, started by
// mpirun (stow train --tp N does that itself) or by a scheduler such as Slurm's srun. Errors inside
// MPI are fatal to the whole job (MPI's default handler), so no rank waits for a dead one.
#include <mpi.h>

#include <climits>
#include <cstdlib>
#include <string>
#include <vector>

#include "comm/comm.h"
#include "core/ctx.h"

namespace stow {

namespace {

// MPI counts are ints; the plan's tensors are far below 2^31 elements per call, but say so if not.
int count(int64_t n, const char* what) {
  if (n < 0 || n > INT_MAX) throw Error(std::string("internal: ") + what + " of " + std::to_string(n) + " elements is too large for MPI");
  return int(n);
}

class MpiComm final : public Comm {
 public:
  // A group of the job's ranks; freed with it (MPI_Finalize frees what is left).
  explicit MpiComm(MPI_Comm comm) : comm_(comm), owns_comm_(true) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  MpiComm() {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int provided = 0;
      // Only the thread that runs the plan calls MPI; OpenMP threads never do.
      MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
      owns_ = true;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  ~MpiComm() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owns_comm_ && !finalized) MPI_Comm_free(&comm_);
    if (owns_ && !finalized) MPI_Finalize();
  }
  std::unique_ptr<Comm> split(int color, int key) override {
    MPI_Comm part = MPI_COMM_NULL;
    MPI_Comm_split(comm_, color, key, &part);
    return std::make_unique<MpiComm>(part);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void all_reduce(float* buf, int64_t n, Reduce op) override {
    MPI_Allreduce(MPI_IN_PLACE, buf, count(n, "all_reduce"), MPI_FLOAT, op == Reduce::Sum ? MPI_SUM : MPI_MAX, comm_);
  }
  void all_gather(const void* send, void* recv, int64_t bytes) override {
    const bool in_place = send == static_cast<const char*>(recv) + int64_t(rank_) * bytes;
    MPI_Allgather(in_place ? MPI_IN_PLACE : send, count(bytes, "all_gather"), MPI_BYTE, recv, int(bytes), MPI_BYTE, comm_);
  }
  void reduce_scatter(const float* send, float* recv, int64_t n) override {
    MPI_Reduce_scatter_block(send, recv, count(n, "reduce_scatter"), MPI_FLOAT, MPI_SUM, comm_);
  }
  // Non-blocking collectives (MPI-3) on this communicator, ordered with the blocking ones by call order.
  int64_t start_all_gather(const void* send, void* recv, int64_t bytes) override {
    return started(MPI_Iallgather(send, count(bytes, "all_gather"), MPI_BYTE, recv, int(bytes), MPI_BYTE, comm_, fresh()));
  }
  int64_t start_reduce_scatter(const float* send, float* recv, int64_t n) override {
    return started(MPI_Ireduce_scatter_block(send, recv, count(n, "reduce_scatter"), MPI_FLOAT, MPI_SUM, comm_, fresh()));
  }
  int64_t start_all_reduce(float* buf, int64_t n) override {
    return started(MPI_Iallreduce(MPI_IN_PLACE, buf, count(n, "all_reduce"), MPI_FLOAT, MPI_SUM, comm_, fresh()));
  }
  void finish(int64_t ticket) override {
    if (ticket < 1 || ticket > int64_t(requests_.size())) throw Error("internal: finish of unknown collective ticket " + std::to_string(ticket));
    MPI_Wait(&requests_[size_t(ticket - 1)], MPI_STATUS_IGNORE);
    // Once none is in flight, tickets start again from 1, so the list does not grow step after step.
    if (--in_flight_ == 0) requests_.clear();
  }
  // One test suffices: OpenMPI progresses every request of the process inside any call.
  void progress() override {
    if (in_flight_ == 0) return;
    // A request that completes here becomes null; finish() still counts it (MPI_Wait on it returns at once).
    int done = 0;
    for (MPI_Request& r : requests_)
      if (r != MPI_REQUEST_NULL) {
        MPI_Test(&r, &done, MPI_STATUS_IGNORE);
        return;
      }
  }
  void broadcast(void* buf, int64_t bytes, int root) override {
    MPI_Bcast(buf, count(bytes, "broadcast"), MPI_BYTE, root, comm_);
  }
  void gather(const void* send, void* recv, int64_t bytes, int root) override {
    MPI_Gather(send, count(bytes, "gather"), MPI_BYTE, recv, int(bytes), MPI_BYTE, root, comm_);
  }
  [[noreturn]] void abort(int code) override {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

 private:
  MPI_Request* fresh() {
    requests_.push_back(MPI_REQUEST_NULL);
    return &requests_.back();
  }
  int64_t started(int code) {
    if (code != MPI_SUCCESS) throw Error("internal: a non-blocking collective failed to start");
    in_flight_ += 1;
    return int64_t(requests_.size());
  }

  std::vector<MPI_Request> requests_;  // of tickets 1, 2, ...; null once complete
  int64_t in_flight_ = 0;              // started and not yet finished
  int rank_ = 0;
  int size_ = 1;
  bool owns_ = false;
  MPI_Comm comm_ = MPI_COMM_WORLD;
  bool owns_comm_ = false;
};

}  // namespace

// A static: MPI is finalised when the process exits normally, as mpirun expects of every rank.
Comm& process_comm() {
  static MpiComm comm;
  return comm;
}

}  // namespace stow
