// The optimizer step on the GPU: the global gradient norm (for clipping; under --tp from sums of
// squares all-reduced over the ranks) and AdamW with the element update of kernel_math.h; AdamW on
// offloaded chunks runs the CPU backend's kernel on the host.
#include <omp.h>

#include <cmath>
#include <algorithm>
#include <vector>

#include "cpu/host_adamw.h"  // adamw_on_host runs the CPU backend's AdamW on the host
#include "cpu/kernels.h"
#include "launch.h"

namespace stow::cuda {

double host_sum_squares(const float* g, int64_t n, int threads) {
  std::vector<double> partial(size_t(threads), 0.0);
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    double acc = 0.0;
    for (int64_t i = n * t / nt; i < n * (t + 1) / nt; i++) acc += double(g[i]) * double(g[i]);
    partial[size_t(t)] = acc;
  }
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

namespace {

constexpr int kNormBlocks = 128;

// partial[b] = this block's share of sum g[i]^2, in double: a grid-stride sweep per thread, then the
// block's threads in order.
__global__ void sum_squares_kernel(double* partial, const float* g, int64_t n) {
  __shared__ double lanes[kBlock];
  double acc = 0.0;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    acc += double(g[i]) * double(g[i]);
  const double total = block_sum_in_order(acc, lanes);
  if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

bool in_host_region(const Ctx& c, const float* p) {
  const uint8_t* b = reinterpret_cast<const uint8_t*>(p);
  return c.host != nullptr && b >= c.host && b < c.host + c.host_bytes;
}


// The sum of squares of every gradient, in double, on the host. Device gradients are summed by kernels
// into scratch partials; gradients already copied to the host (offloaded chunks; the plan waited for
// their copies before this node) are summed there, and those in the disk tier (disk[t] >= 0) add the
// sum d2h_to_disk kept as they went out. Then the host adds everything up in tensor order.
double squares(Ctx& c, const float* const* grads, const int64_t* sizes, int64_t count, const int64_t* disk = nullptr) {
  Runtime& rt = runtime(c);
  double* partial = static_cast<double*>(rt.scratch(count * kNormBlocks * int64_t(sizeof(double))));
  const auto on_disk = [&](int64_t t) { return disk != nullptr && disk[t] >= 0; };
  for (int64_t t = 0; t < count; t++) {
    if (on_disk(t) || in_host_region(c, grads[t])) continue;
    STOW_LAUNCH(sum_squares_kernel, kNormBlocks, kBlock, rt.compute())(partial + t * kNormBlocks, grads[t], sizes[t]);
    check_launch(c, "sum of squares");
  }
  std::vector<double> partials(size_t(count * kNormBlocks));
  rt.copy_now(partials.data(), partial, int64_t(partials.size() * sizeof(double)), cudaMemcpyDeviceToHost,
              std::string("a sum of squares (node ") + c.node + ")");
  double total = 0.0;
  for (int64_t t = 0; t < count; t++) {
    if (on_disk(t)) {
      total += c.disk->squares(disk[t]).at(0);
    } else if (in_host_region(c, grads[t])) {
      total += host_sum_squares(grads[t], sizes[t], rt.host_threads());
    } else {
      for (int b = 0; b < kNormBlocks; b++) total += partials[size_t(t * kNormBlocks + b)];
    }
  }
  return total;
}

// A float the host computed, written to the arena for the kernels and metrics that read it there.
void write_scalar(Ctx& c, float* out, float value) {
  runtime(c).copy_now(out, &value, 4, cudaMemcpyHostToDevice, std::string("writing a result (node ") + c.node + ")");
}

}  // namespace

float grad_norm(Ctx& c, float* out, const float* const* grads, const int64_t* sizes, int64_t count) {
  c.touch(out, 4);
  const float norm = float(std::sqrt(squares(c, grads, sizes, count)));
  write_scalar(c, out, norm);
  return norm;
}

float grad_norm_from_disk(Ctx& c, float* out, const float* const* grads, const int64_t* disk, const int64_t* sizes, int64_t count) {
  c.touch(out, 4);
  if (c.disk == nullptr) throw Error(std::string("internal: node ") + c.node + " sums gradients kept on disk but no disk tier is open");
  runtime(c).finish_disk_writes();  // their sums are kept as they are written
  const float norm = float(std::sqrt(squares(c, grads, sizes, count, disk)));
  write_scalar(c, out, norm);
  return norm;
}

// Under --tp: the sums of squares of the split gradients are all-reduced before norm_from_squares.
void sum_squares(Ctx& c, float* out, const float* const* grads, const int64_t* sizes, int64_t count) {
  c.touch(out, 4);
  write_scalar(c, out, float(squares(c, grads, sizes, count)));
}

float norm_from_squares(Ctx& c, float* out, const float* const* parts, int64_t count) {
  c.touch(out, 4);
  double total = 0.0;
  for (int64_t k = 0; k < count; k++) {
    float part = 0.0f;
    runtime(c).copy_now(&part, parts[k], 4, cudaMemcpyDeviceToHost, std::string("norm_from_squares (node ") + c.node + ")");
    total += double(part);
  }
  const float norm = float(std::sqrt(total));
  write_scalar(c, out, norm);
  return norm;
}

void adamw(Ctx& c, float* p, const float* g, float* m, float* v, int64_t n, const AdamHyper& h, float gscale, bool decay) {
  c.touch(p, n * 4);
  c.touch(m, n * 4);
  c.touch(v, n * 4);
  const math::AdamScalars s = math::adam_scalars(h.lr, h.beta1, h.beta2, h.eps, h.weight_decay, h.t, decay);
  for_each(c, "adamw", n, [=] __device__(int64_t i) { math::adamw_element(p[i], g[i], m[i], v[i], gscale, s); });
}

void zero_adamw(Ctx& c, float* chunk, bool chunk_is_shard, const float* const* grads, const float* grad_shard, const int64_t* offsets,
                const int64_t* sizes, const bool* decay, int64_t count, float* m, float* v, int64_t shard, const AdamHyper& h,
                float gscale) {
  const int64_t begin = int64_t(c.dp_rank) * shard, end = begin + shard;
  c.touch(m, shard * 4);
  c.touch(v, shard * 4);
  for (int64_t k = 0; k < count; k++) {
    const int64_t from = std::max(begin, offsets[k]), to = std::min(end, offsets[k] + sizes[k]);
    if (from >= to) continue;  // this parameter lies in other ranks' shards
    float* p = chunk + (chunk_is_shard ? from - begin : from);
    const float* g = grad_shard != nullptr ? grad_shard + (from - begin) : grads[k] + (from - offsets[k]);
    float* mk = m + (from - begin);
    float* vk = v + (from - begin);
    c.touch(p, (to - from) * 4);
    const math::AdamScalars s = math::adam_scalars(h.lr, h.beta1, h.beta2, h.eps, h.weight_decay, h.t, decay[k]);
    for_each(c, "zero_adamw", to - from, [=] __device__(int64_t i) { math::adamw_element(p[i], g[i], mk[i], vk[i], gscale, s); });
  }
}

void zero_adamw_on_host(Ctx& c, int64_t after, float* shard_params, const float* grad_shard, const int64_t* offsets,
                        const int64_t* sizes, const bool* decay, int64_t count, float* m, float* v, int64_t shard, const AdamHyper& h,
                        float gscale) {
  Ctx host = c;
  host.host_node = true;
  host.threads = runtime(c).host_threads();
  runtime(c).host_task(after, [=]() mutable {
    stow::zero_adamw(host, shard_params, true, nullptr, grad_shard, offsets, sizes, decay, count, m, v, shard, h, gscale);
  });
}

void adamw_on_host(Ctx& c, int64_t after, float* p, const float* g, float* m, float* v, int64_t n, const AdamHyper& h,
                   float gscale, bool decay) {
  Ctx host = c;
  host.host_node = true;
  host.touch(p, n * 4);
  host.touch(m, n * 4);
  host.touch(v, n * 4);
  Runtime& rt = runtime(c);
  rt.host_task(after, [=, &rt] { host_adamw(rt.host_pool(), p, g, m, v, n, h, gscale, decay); });
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
  Runtime& rt = runtime(c);
  const auto piece_update = [&rt, h, gscale, decay](float* pp, const float* gg, float* mm, float* vv, int64_t count) {
    host_adamw(rt.host_pool(), pp, gg, mm, vv, count, h, gscale, decay);
  };
  rt.disk_update(after, *c.disk, {m_stage, v_stage, g_stage, p_stage, piece, int(slots)},
                 {n, p, p_disk, g, g_disk, m_disk, v_disk, {}, piece_update});
}

}  // namespace stow::cuda
