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

// Read ahead off the compute thread: the runtime's disk reader reads the chunk into the staging buffer
// and queues its copy, while compute goes on; the IR's `wait` on the ticket orders compute after it.
int64_t h2d_from_disk(Ctx& c, float* device, int64_t disk, float* stage, int64_t n) {
  if (c.disk == nullptr) throw Error(std::string("internal: node ") + c.node + " reads model data from disk but no disk tier is open");
  c.touch(device, 4 * n);
  return runtime(c).copy_from_disk(device, *c.disk, disk, stage, 4 * n);
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
