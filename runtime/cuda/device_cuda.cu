// The CUDA backend's device (runtime/core/device.h): one cudaMalloc'd arena of the plan's size, the host
// region of offloaded model data pinned so that copies run asynchronously at full speed, the
// streams, events and cuBLAS of the Runtime, which kernels reach through Ctx::gpu, and under --tp
// the NCCL communicator, which they reach through Ctx::comm.
#include <omp.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "comm_nccl.h"
#include "core/device.h"
#include "runtime.h"

namespace stow {
namespace {

std::string mib(int64_t bytes) { return std::to_string((bytes + (1 << 20) - 1) >> 20) + " MiB"; }

// A tensor-parallel rank's index among the ranks on its machine, as the launcher reports it (OpenMPI,
// Slurm, torchrun-style); without one, its rank (all ranks on one machine).
int local_rank(int rank) {
  for (const char* var : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "LOCAL_RANK"})
    if (const char* v = std::getenv(var)) return std::atoi(v);
  return rank;
}

// One GPU per rank: rank r of a machine computes on its GPU r.
void select_gpu(int rank, int ranks) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0)
    throw Error(std::string("--backend cuda: no usable CUDA GPU on this machine (") +
                (e != cudaSuccess ? cudaGetErrorString(e) : "the driver reports none") +
                "); train with --backend cpu, or on a machine with an NVIDIA GPU and its driver");
  const int gpu = ranks > 1 ? local_rank(rank) : 0;
  if (gpu < 0 || gpu >= count)
    throw Error("--tp " + std::to_string(ranks) + " with --backend cuda takes one GPU per rank, but rank " + std::to_string(rank) +
                " would need GPU " + std::to_string(gpu) + " and this machine has " + std::to_string(count));
  cuda::check(cudaSetDevice(gpu), "selecting GPU " + std::to_string(gpu));
}

class CudaDevice final : public Device {
 public:
  CudaDevice(const PlanDesc& plan, Ctx& c, uint8_t* host_region, const DeviceOptions& o) {
    select_gpu(c.rank, c.ranks);
    size_t free_bytes = 0, total_bytes = 0;
    cuda::check(cudaMemGetInfo(&free_bytes, &total_bytes), "reading the GPU's free memory");
    if (plan.arena_bytes > int64_t(free_bytes))
      throw Error("the plan's device arena needs " + mib(plan.arena_bytes) + " but GPU 0 has " + mib(int64_t(free_bytes)) +
                  " free of " + mib(int64_t(total_bytes)) + "; compile for less with --device-memory");
    void* memory = nullptr;
    cuda::check(cudaMalloc(&memory, size_t(plan.arena_bytes)), "allocating the device arena of " + mib(plan.arena_bytes));
    arena_.reset(memory);
    cuda::check(cudaMemset(memory, 0, size_t(plan.arena_bytes)), "zeroing the device arena");
    // The memset ran on the legacy stream, which the runtime's streams do not wait for.
    cuda::check(cudaDeviceSynchronize(), "zeroing the device arena");
    if (host_region != nullptr) {
      cuda::check(cudaHostRegister(host_region, size_t(plan.host_bytes), cudaHostRegisterDefault),
                  "pinning the host region of offloaded model data (" + mib(plan.host_bytes) + ")");
      pinned_.reset(host_region);
    }
    omp_set_num_threads(o.threads);
    runtime_ = std::make_unique<cuda::Runtime>(o.threads);
    c.arena = arena();
    c.arena_bytes = plan.arena_bytes;
    c.gpu = runtime_.get();
    // The collectives of the plan's kernels run on GPU memory: NCCL, bootstrapped over the session's
    // host communicator, which keeps the host-side calls.
    if (c.ranks > 1) {
      nccl_ = std::make_unique<cuda::NcclComm>(*c.comm, runtime_->compute());
      c.comm = nccl_.get();
    }
    if (c.dp_ranks > 1) {
      dp_nccl_ = std::make_unique<cuda::NcclComm>(*c.dp_comm, runtime_->compute());
      c.dp_comm = dp_nccl_.get();
    }
  }

  uint8_t* arena() const override { return static_cast<uint8_t*>(arena_.get()); }

  void upload(void* device, const void* host, int64_t bytes) override {
    runtime_->copy_now(device, host, bytes, cudaMemcpyHostToDevice, "a copy to the device");
  }
  void download(void* host, const void* device, int64_t bytes) override {
    runtime_->copy_now(host, device, bytes, cudaMemcpyDeviceToHost, "a copy from the device");
  }
  void synchronize() override { cuda::check(cudaStreamSynchronize(runtime_->compute()), "the kernels of the step"); }

  uint8_t* mirror(int64_t bytes) override {
    mirror_.resize(size_t(bytes));
    return mirror_.data();
  }
  void pull_mirror() override { download(mirror_.data(), arena(), int64_t(mirror_.size())); }
  void push_mirror() override { upload(arena(), mirror_.data(), int64_t(mirror_.size())); }
  void release_mirror() override { std::vector<uint8_t>().swap(mirror_); }

  TransferStats transfer_stats() const override { return {runtime_->h2d_bytes, runtime_->d2h_bytes, runtime_->wait_seconds}; }
  void reset_transfer_stats() override {
    runtime_->h2d_bytes = runtime_->d2h_bytes = 0;
    runtime_->wait_seconds = 0;
  }

 private:
  struct Free {
    void operator()(void* p) const { cudaFree(p); }
  };
  struct Unpin {
    void operator()(void* p) const { cudaHostUnregister(p); }
  };
  // Destroyed in reverse: the runtime finishes every copy and kernel before memory is unpinned and freed.
  std::unique_ptr<void, Free> arena_;
  std::unique_ptr<void, Unpin> pinned_;
  std::vector<uint8_t> mirror_;
  std::unique_ptr<cuda::Runtime> runtime_;
  std::unique_ptr<cuda::NcclComm> nccl_, dp_nccl_;  // destroyed first: its collectives run on the runtime's stream
};

}  // namespace

std::unique_ptr<Device> open_device(const PlanDesc& plan, Ctx& c, uint8_t* host_region, const DeviceOptions& o) {
  return std::make_unique<CudaDevice>(plan, c, host_region, o);
}

}  // namespace stow
