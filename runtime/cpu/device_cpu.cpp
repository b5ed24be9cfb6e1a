// The CPU backend's device: the arena is ordinary memory, copies are memcpy, and offloaded plans get a
// TransferEngine whose link threads play the host-device link (throttled with --link-gbps).
#include <omp.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "core/device.h"
#include "core/transfer_engine.h"

extern "C" void openblas_set_num_threads(int);

namespace stow {
namespace {

class CpuDevice final : public Device {
 public:
  CpuDevice(const PlanDesc& plan, Ctx& c, uint8_t* host_region, const DeviceOptions& o) {
    const size_t bytes = size_t((plan.arena_bytes + 63) / 64 * 64);
    arena_.reset(static_cast<uint8_t*>(std::aligned_alloc(64, bytes)));
    if (!arena_) throw Error("cannot allocate the device arena of " + std::to_string(plan.arena_bytes) + " bytes");
    std::memset(arena_.get(), 0, bytes);
    c.arena = arena_.get();
    c.arena_bytes = plan.arena_bytes;
    if (host_region != nullptr) {
      // Gigabits per second to bytes per second. Host AdamW gets as many threads as the kernels: on a GPU
      // machine those are the host's cores, which the device's compute leaves free.
      engine_ = std::make_unique<TransferEngine>(o.link_gbps * 1e9 / 8, o.threads);
      c.engine = engine_.get();
    }
    omp_set_num_threads(o.threads);
    openblas_set_num_threads(o.threads);
  }

  uint8_t* arena() const override { return arena_.get(); }
  void upload(void* device, const void* host, int64_t bytes) override { std::memcpy(device, host, size_t(bytes)); }
  void download(void* host, const void* device, int64_t bytes) override { std::memcpy(host, device, size_t(bytes)); }
  void synchronize() override {}
  uint8_t* mirror(int64_t) override { return arena_.get(); }
  void pull_mirror() override {}
  void push_mirror() override {}
  void release_mirror() override {}

  TransferStats transfer_stats() const override {
    if (!engine_) return {};
    return {engine_->h2d_bytes, engine_->d2h_bytes, engine_->stall_seconds};
  }
  void reset_transfer_stats() override {
    if (!engine_) return;
    engine_->h2d_bytes = engine_->d2h_bytes = 0;
    engine_->stall_seconds = 0;
  }

 private:
  std::unique_ptr<uint8_t, decltype(&std::free)> arena_{nullptr, &std::free};
  // Declared after the arena: it finishes its jobs, which write the arena, before the arena goes.
  std::unique_ptr<TransferEngine> engine_;
};

}  // namespace

std::unique_ptr<Device> open_device(const PlanDesc& plan, Ctx& c, uint8_t* host_region, const DeviceOptions& o) {
  return std::make_unique<CpuDevice>(plan, c, host_region, o);
}

}  // namespace stow
