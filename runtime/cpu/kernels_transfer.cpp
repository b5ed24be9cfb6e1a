// The kernels of offloaded plans: they hand copies and host AdamW to the transfer engine and wait on
// its tickets. Touching the destination at submission reserves it: the plan's liveness starts a device
// copy's storage at the copy, not at the wait.
#include "kernels.h"
#include "core/transfer_engine.h"

namespace stow {

static TransferEngine& engine(Ctx& c) {
  if (c.engine == nullptr) throw Error(std::string("internal: node ") + c.node + " moves model data but no transfer engine runs");
  return *c.engine;
}

int64_t h2d_async(Ctx& c, float* device, const float* host, int64_t n) {
  c.touch(device, 4 * n);
  return engine(c).copy(device, host, 4 * n, true, c.timed_node);
}

int64_t d2h_async(Ctx& c, float* host, const float* device, int64_t n) {
  return engine(c).copy(host, device, 4 * n, false, c.timed_node);
}

void wait_transfer(Ctx& c, int64_t ticket) { engine(c).wait_copy(ticket); }

void drain_transfers(Ctx& c) { engine(c).drain(); }

void adamw_on_host(Ctx& c, int64_t after, float* p, const float* g, float* m, float* v, int64_t n, const AdamHyper& h,
                   float gscale, bool decay) {
  Ctx host = c;
  host.host_node = true;
  // One thread: the host worker runs beside the device's compute, which has the cores (on the CPU
  // backend the same ones), and AdamW is bound by memory bandwidth, not arithmetic.
  host.threads = 1;
  engine(c).host_task(after, [=]() mutable { adamw(host, p, g, m, v, n, h, gscale, decay); }, c.timed_node);
}

void zero_adamw_on_host(Ctx& c, int64_t after, float* shard_params, const float* grad_shard, const int64_t* offsets,
                        const int64_t* sizes, const bool* decay, int64_t count, float* m, float* v, int64_t shard, const AdamHyper& h,
                        float gscale) {
  Ctx host = c;
  host.host_node = true;
  host.threads = 1;  // as adamw_on_host
  engine(c).host_task(
      after,
      [=]() mutable { zero_adamw(host, shard_params, true, nullptr, grad_shard, offsets, sizes, decay, count, m, v, shard, h, gscale); },
      c.timed_node);
}

}  // namespace stow
