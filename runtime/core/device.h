// The device a session computes on, behind the few operations session.cpp needs: the arena, copies
// between it and host memory, and the transfer engine of offloaded plans. A build links exactly one
// implementation: device_cpu.cpp (the "device" is ordinary memory, the link a thread) or
// cuda/device_cuda.cu (a GPU). Kernels reach their device through Ctx, not through this interface.
#pragma once
#include <cstdint>
#include <memory>

#include "ctx.h"
#include "plan.h"

namespace stow {

struct DeviceOptions {
  int threads;           // host threads: CPU kernels, host AdamW
  double link_gbps;      // emulated link for offloaded model data (CPU backend); 0: unthrottled
};

// What moved between host and device since the last reset, and how long compute waited for it.
struct TransferStats {
  int64_t h2d_bytes = 0, d2h_bytes = 0;
  double wait_seconds = 0;
};

class Device {
 public:
  virtual ~Device() = default;
  // The arena of the plan's size, zeroed at open.
  virtual uint8_t* arena() const = 0;
  // Synchronous copies between host memory and the arena; they follow all work queued before them.
  virtual void upload(void* device, const void* host, int64_t bytes) = 0;
  virtual void download(void* host, const void* device, int64_t bytes) = 0;
  // Returns once every kernel and copy queued so far has finished.
  virtual void synchronize() = 0;
  // Host memory laid out like the arena's first `bytes` bytes (where resident model data lives), for
  // initialising, loading and saving model data: pull() fills it from the arena, push() writes it
  // back. On the CPU it is the arena itself, and pull and push do nothing.
  virtual uint8_t* mirror(int64_t bytes) = 0;
  virtual void pull_mirror() = 0;
  virtual void push_mirror() = 0;
  virtual void release_mirror() = 0;
  virtual TransferStats transfer_stats() const = 0;
  virtual void reset_transfer_stats() = 0;
};

// Opens the device for a plan: allocates the arena, makes the host region (offloaded model data, null
// when there is none) ready for copies, starts what runs copies and host work, and points c at them.
std::unique_ptr<Device> open_device(const PlanDesc& plan, Ctx& c, uint8_t* host_region, const DeviceOptions& o);

}  // namespace stow
