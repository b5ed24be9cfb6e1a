// The offload schedule's copies and waits on the CUDA runtime's copy streams (runtime.h). Touching the
// destination of a copy to the device at submission reserves it, as on the CPU backend: the plan's
// liveness starts a device copy's storage at the copy, not at the wait.
#include "core/disk_tier.h"
#include "launch.h"

namespace stow::cuda {

int64_t h2d_async(Ctx& c, float* device, const float* host, int64_t n) {
  c.touch(device, 4 * n);
  return runtime(c).copy_async(device, host, 4 * n, true);
}

// Not overlapped yet: the calling thread reads the chunk from disk into the staging buffer, and waits
// for its copy to land before returning, as the next such copy reuses the buffer (the CPU backend's link
// worker does both off the compute thread).
int64_t h2d_from_disk(Ctx& c, float* device, int64_t disk, float* stage, int64_t n) {
  if (c.disk == nullptr) throw Error(std::string("internal: node ") + c.node + " reads model data from disk but no disk tier is open");
  c.touch(device, 4 * n);
  c.disk->read(nullptr, disk, stage, DiskTier::span(disk, 4 * n));
  Runtime& rt = runtime(c);
  const int64_t ticket = rt.copy_async(device, stage, 4 * n, true);
  rt.finish(ticket);
  return ticket;
}

int64_t d2h_async(Ctx& c, float* host, const float* device, int64_t n) {
  return runtime(c).copy_async(host, device, 4 * n, false);
}

// Written behind: the copy lands in the staging buffer, and the runtime's disk writer takes its sum of
// squares for the gradient norm and writes it out while compute goes on.
int64_t d2h_to_disk(Ctx& c, int64_t disk, const float* device, float* stage, int64_t n) {
  if (c.disk == nullptr) throw Error(std::string("internal: node ") + c.node + " writes model data to disk but no disk tier is open");
  Runtime& rt = runtime(c);
  const int threads = rt.host_threads();
  const auto keep_squares = [tier = c.disk, disk, n, threads](const void* landed) {
    tier->keep_squares(disk, {host_sum_squares(static_cast<const float*>(landed), n, threads)});
  };
  return rt.copy_to_disk(*c.disk, disk, stage, device, 4 * n, keep_squares);
}

void wait_transfer(Ctx& c, int64_t ticket) { runtime(c).wait(ticket); }

void drain_transfers(Ctx& c) { runtime(c).drain(); }

}  // namespace stow::cuda
