// The kernels of offloaded plans: they hand copies and host AdamW to the transfer engine and wait on
// its tickets. Touching the destination at submission reserves it: the plan's liveness starts a device
// copy's storage at the copy, not at the wait.
#include "host_adamw.h"
#include "kernels.h"
#include "kernels_common.h"
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

int64_t h2d_from_disk(Ctx& c, float* device, int64_t disk, float* stage, int64_t n) {
  if (c.disk == nullptr) throw Error(std::string("internal: node ") + c.node + " reads model data from disk but no disk tier is open");
  c.touch(device, 4 * n);
  return engine(c).copy_from_disk(device, *c.disk, disk, stage, 4 * n, c.timed_node);
}

int64_t d2h_async(Ctx& c, float* host, const float* device, int64_t n) {
  return engine(c).copy(host, device, 4 * n, false, c.timed_node);
}

int64_t d2h_to_disk(Ctx& c, int64_t disk, const float* device, float* stage, int64_t n) {
  if (c.disk == nullptr) throw Error(std::string("internal: node ") + c.node + " writes model data to disk but no disk tier is open");
  // The gradient norm's sums are taken on the way out (grad_norm_from_disk), so it reads nothing back.
  const auto keep_squares = [tier = c.disk, disk, n, threads = c.threads](const void* landed) {
    tier->keep_squares(disk, detail::squares_by_share(static_cast<const float*>(landed), n, threads));
  };
  return engine(c).copy_to_disk(*c.disk, disk, device, stage, 4 * n, keep_squares, c.timed_node);
}

void wait_transfer(Ctx& c, int64_t ticket) { engine(c).wait_copy(ticket); }

void drain_transfers(Ctx& c) { engine(c).drain(); }

void adamw_on_host(Ctx& c, int64_t after, float* p, const float* g, float* m, float* v, int64_t n, const AdamHyper& h,
                   float gscale, bool decay) {
  Ctx host = c;
  host.host_node = true;
  host.touch(p, n * 4);
  host.touch(m, n * 4);
  host.touch(v, n * 4);
  // The job runs later, so it captures by value (the hyperparameters too).
  TransferEngine& e = engine(c);
  e.host_task(after, [=, &e] { host_adamw(e.host_threads(), p, g, m, v, n, h, gscale, decay); }, c.timed_node);
}

void adamw_on_disk(Ctx& c, int64_t after, float* p, int64_t p_disk, float* p_stage, const float* g, int64_t g_disk, float* g_stage,
                   int64_t m_disk, int64_t v_disk, float* m_stage, float* v_stage, int64_t piece, int64_t slots, int64_t n,
                   const AdamHyper& h, float gscale, bool decay) {
  Ctx host = c;
  host.host_node = true;
  host.touch(p_disk >= 0 ? p_stage : p, n * 4);
  host.touch(m_stage, n * 4);
  host.touch(v_stage, n * 4);
  if (c.disk == nullptr) throw Error(std::string("internal: node ") + c.node + " keeps model data on disk but no disk tier is open");
  TransferEngine& e = engine(c);
  // Each piece runs host_adamw's loop, as the whole parameter would: the same bits.
  const auto piece_update = [&e, h, gscale, decay](float* pp, const float* gg, float* mm, float* vv, int64_t count) {
    host_adamw(e.host_threads(), pp, gg, mm, vv, count, h, gscale, decay);
  };
  DiskUpdate update{n, p, p_disk, g, g_disk, m_disk, v_disk, {}, piece_update};
  e.disk_update(after, *c.disk, {m_stage, v_stage, g_stage, p_stage, piece, int(slots)}, std::move(update), c.timed_node);
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
