#include "comm_nccl.h"

#include <string>

#include "core/ctx.h"

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
}

void NcclComm::check(Nccl::Result r, const char* what) const {
  if (r != 0)
    throw Error(std::string("NCCL error in ") + what + " on rank " + std::to_string(host_.rank()) + " of " +
                std::to_string(host_.size()) + ": " + nccl_.error_string(r));
}

void NcclComm::all_reduce(float* buf, int64_t n, Reduce op) {
  check(nccl_.all_reduce(buf, buf, size_t(n), Nccl::kFloat32, op == Reduce::Sum ? Nccl::kSum : Nccl::kMax, comm_, stream_),
        "ncclAllReduce");
}

void NcclComm::all_gather(const void* send, void* recv, int64_t bytes) {
  check(nccl_.all_gather(send, recv, size_t(bytes), Nccl::kUint8, comm_, stream_), "ncclAllGather");
}

void NcclComm::reduce_scatter(const float* send, float* recv, int64_t n) {
  check(nccl_.reduce_scatter(send, recv, size_t(n), Nccl::kFloat32, Nccl::kSum, comm_, stream_), "ncclReduceScatter");
}

void NcclComm::broadcast(void* buf, int64_t bytes, int root) {
  check(nccl_.broadcast(buf, buf, size_t(bytes), Nccl::kUint8, root, comm_, stream_), "ncclBroadcast");
}

}  // namespace stow::cuda
