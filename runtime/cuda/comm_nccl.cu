#include "comm_nccl.h"

#include <string>

#include "core/ctx.h"
#include "runtime.h"

namespace stow::cuda {

NcclComm::NcclComm(Comm& host, cudaStream_t stream) : host_(host), stream_(stream), nccl_(Nccl::load()) {
  Nccl::UniqueId id{};
  if (host_.rank() == 0) check(nccl_.get_unique_id(&id), "ncclGetUniqueId");
  host_.broadcast(&id, sizeof id, 0);
  check(nccl_.comm_init_rank(&comm_, host_.size(), id, host_.rank()), "ncclCommInitRank");
}

// Errors are not thrown from here: the session is going away, possibly because of one.
NcclComm::~NcclComm() {
  if (comm_ != nullptr) nccl_.comm_destroy(comm_);
  for (Overlapped& o : overlapped_) {
    cudaEventDestroy(o.ready);
    cudaEventDestroy(o.done);
  }
  if (side_ != nullptr) cudaStreamDestroy(side_);
}

void NcclComm::check(Nccl::Result r, const char* what) const {
  if (r != 0)
    throw Error(std::string("NCCL error in ") + what + " on rank " + std::to_string(host_.rank()) + " of " +
                std::to_string(host_.size()) + ": " + nccl_.error_string(r));
}

template <class Queue>
void NcclComm::queue_in_order(Queue queue) {
  if (in_flight_ == 0) {
    queue(stream_);
    return;
  }
  // A collective started to overlap compute is still queued on the communication stream. This one goes
  // there too, behind it, so that all of this communicator's work stays on one stream in issue order
  // (NCCL does not promise that two kernels of one communicator progress side by side on two streams),
  // and compute waits for it as for any blocking collective.
  const int64_t ticket = begin_overlapped();
  queue(side_);
  finish(end_overlapped(ticket));
}

void NcclComm::all_reduce(float* buf, int64_t n, Reduce op) {
  queue_in_order([&](cudaStream_t s) {
    check(nccl_.all_reduce(buf, buf, size_t(n), Nccl::kFloat32, op == Reduce::Sum ? Nccl::kSum : Nccl::kMax, comm_, s),
          "ncclAllReduce");
  });
}

void NcclComm::all_gather(const void* send, void* recv, int64_t bytes) {
  queue_in_order([&](cudaStream_t s) { check(nccl_.all_gather(send, recv, size_t(bytes), Nccl::kUint8, comm_, s), "ncclAllGather"); });
}

void NcclComm::reduce_scatter(const float* send, float* recv, int64_t n) {
  queue_in_order([&](cudaStream_t s) {
    check(nccl_.reduce_scatter(send, recv, size_t(n), Nccl::kFloat32, Nccl::kSum, comm_, s), "ncclReduceScatter");
  });
}

void NcclComm::broadcast(void* buf, int64_t bytes, int root) {
  queue_in_order([&](cudaStream_t s) { check(nccl_.broadcast(buf, buf, size_t(bytes), Nccl::kUint8, root, comm_, s), "ncclBroadcast"); });
}

int64_t NcclComm::begin_overlapped() {
  if (side_ == nullptr) stow::cuda::check(cudaStreamCreateWithFlags(&side_, cudaStreamNonBlocking), "creating the communication stream");
  if (in_flight_ == 0) started_ = 0;
  const int64_t ticket = ++started_;
  if (size_t(ticket) > overlapped_.size()) {
    Overlapped o{};
    stow::cuda::check(cudaEventCreateWithFlags(&o.ready, cudaEventDisableTiming), "creating a collective's event");
    stow::cuda::check(cudaEventCreateWithFlags(&o.done, cudaEventDisableTiming), "creating a collective's event");
    overlapped_.push_back(o);
  }
  const Overlapped& o = overlapped_[size_t(ticket - 1)];
  stow::cuda::check(cudaEventRecord(o.ready, stream_), "ordering a collective after compute");
  stow::cuda::check(cudaStreamWaitEvent(side_, o.ready, 0), "ordering a collective after compute");
  return ticket;
}

int64_t NcclComm::end_overlapped(int64_t ticket) {
  stow::cuda::check(cudaEventRecord(overlapped_[size_t(ticket - 1)].done, side_), "recording a collective's completion");
  in_flight_ += 1;
  return ticket;
}

int64_t NcclComm::start_all_gather(const void* send, void* recv, int64_t bytes) {
  const int64_t ticket = begin_overlapped();
  check(nccl_.all_gather(send, recv, size_t(bytes), Nccl::kUint8, comm_, side_), "ncclAllGather");
  return end_overlapped(ticket);
}

int64_t NcclComm::start_reduce_scatter(const float* send, float* recv, int64_t n) {
  const int64_t ticket = begin_overlapped();
  check(nccl_.reduce_scatter(send, recv, size_t(n), Nccl::kFloat32, Nccl::kSum, comm_, side_), "ncclReduceScatter");
  return end_overlapped(ticket);
}

int64_t NcclComm::start_all_reduce(float* buf, int64_t n) {
  const int64_t ticket = begin_overlapped();
  check(nccl_.all_reduce(buf, buf, size_t(n), Nccl::kFloat32, Nccl::kSum, comm_, side_), "ncclAllReduce");
  return end_overlapped(ticket);
}

void NcclComm::finish(int64_t ticket) {
  if (ticket < 1 || ticket > started_) throw Error("internal: finish of unknown collective ticket " + std::to_string(ticket));
  stow::cuda::check(cudaStreamWaitEvent(stream_, overlapped_[size_t(ticket - 1)].done, 0), "waiting for a collective");
  in_flight_ -= 1;
}

}  // namespace stow::cuda
