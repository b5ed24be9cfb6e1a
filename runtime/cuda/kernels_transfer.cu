// The offload schedule's copies and waits on the CUDA runtime's copy streams (runtime.h). Touching the
// destination of a copy to the device at submission reserves it, as on the CPU backend: the plan's
// liveness starts a device copy's storage at the copy, not at the wait.
#include "launch.h"

namespace stow::cuda {

int64_t h2d_async(Ctx& c, float* device, const float* host, int64_t n) {
  c.touch(device, 4 * n);
  return runtime(c).copy_async(device, host, 4 * n, true);
}

int64_t d2h_async(Ctx& c, float* host, const float* device, int64_t n) {
  return runtime(c).copy_async(host, device, 4 * n, false);
}

void wait_transfer(Ctx& c, int64_t ticket) { runtime(c).wait(ticket); }

void drain_transfers(Ctx& c) { runtime(c).drain(); }

}  // namespace stow::cuda
