// The optimizer step: global gradient norm (for clipping) and AdamW.
#include <algorithm>
#include <vector>

#include "core/disk_tier.h"
#include "host_adamw.h"
#include "kernels.h"
#include "kernels_common.h"

namespace stow {
using namespace detail;

// Each thread takes the same contiguous share of every tensor and sums squares in double, tensors in
// order; the thread sums are then added in thread order (fixed for a given thread count).
double detail::sum_of_squares(const Ctx& c, const float* const* grads, const int64_t* sizes, int64_t count) {
  std::vector<double> partial(c.threads, 0.0);
#pragma omp parallel num_threads(c.threads)
  {
    double acc = 0.0;
    for (int64_t t = 0; t < count; t++) {
      const Span span = thread_span(sizes[t]);
      const float* g = grads[t] + span.begin;
      acc += lane_sum<double>(span.end - span.begin, [&](int64_t i) {
        const double x = g[i];
        return x * x;
      });
    }
    partial[omp_get_thread_num()] = acc;
  }
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

void grad_norm(Ctx& c, float* out, const float* const* grads, const int64_t* sizes, int64_t count) {
  c.touch(out, 4);
  const double total = sum_of_squares(c, grads, sizes, count);
  out[0] = float(std::sqrt(total));
}

std::vector<double> detail::squares_by_share(const float* g, int64_t n, int threads) {
  std::vector<double> sums(static_cast<size_t>(threads));
  for (int t = 0; t < threads; t++) {
    const int64_t begin = n * t / threads, end = n * (t + 1) / threads;
    sums[size_t(t)] = lane_sum<double>(end - begin, [&](int64_t i) {
      const double x = g[begin + i];
      return x * x;
    });
  }
  return sums;
}

// sum_of_squares' additions in its order, one tensor at a time: each thread keeps its running sum
// across tensors; for a gradient on disk it adds the share kept as the gradient went out
// (squares_by_share, the same sum over the same elements), so the norm reads nothing back and changes
// no bit.
void grad_norm_from_disk(Ctx& c, float* out, const float* const* grads, const int64_t* disk, const int64_t* sizes, int64_t count) {
  c.touch(out, 4);
  if (c.disk == nullptr) throw Error(std::string("internal: node ") + c.node + " sums gradients kept on disk but no disk tier is open");
  std::vector<double> partial(c.threads, 0.0);
  for (int64_t t = 0; t < count; t++) {
    if (disk[t] >= 0) {
      const std::vector<double> kept = c.disk->squares(disk[t]);
      if (kept.size() != partial.size())
        throw Error(std::string("internal: node ") + c.node + ": a gradient's sums of squares were kept for another thread count");
      for (size_t k = 0; k < partial.size(); k++) partial[k] += kept[k];
      continue;
    }
    const float* g = grads[t];
#pragma omp parallel num_threads(c.threads)
    {
      const Span span = thread_span(sizes[t]);
      const float* share = g + span.begin;
      partial[omp_get_thread_num()] += lane_sum<double>(span.end - span.begin, [&](int64_t i) {
        const double x = share[i];
        return x * x;
      });
    }
  }
  double total = 0.0;
  for (double p : partial) total += p;
  out[0] = float(std::sqrt(total));
}

// Follows torch.optim.AdamW's single-tensor step operation by operation (kernel_math.h): scalars in
// double as Python computes them, then rounded to float for the tensor ops. One pass reads p, g, m, v
// and writes p, m, v (28 bytes an element); the compiler vectorizes it. Every AdamW of the CPU backend
// (on the device, on the host, ZeRO's shards) runs this one loop, so where and on how many threads an
// element is updated never changes a bit of it.
void detail::adamw_span(float* p, const float* g, float* m, float* v, int64_t n, float gscale, const math::AdamScalars& s) {
  for (int64_t i = 0; i < n; i++) math::adamw_element(p[i], g[i], m[i], v[i], gscale, s);
}

void adamw(Ctx& c, float* p, const float* g, float* m, float* v, int64_t n, const AdamHyper& h, float gscale,
           bool decay) {
  c.touch(p, n * 4);
  c.touch(m, n * 4);
  c.touch(v, n * 4);
  const math::AdamScalars s = math::adam_scalars(h.lr, h.beta1, h.beta2, h.eps, h.weight_decay, h.t, decay);
#pragma omp parallel num_threads(c.threads)
  {
    const Span t = thread_span(n);
    adamw_span(p + t.begin, g + t.begin, m + t.begin, v + t.begin, t.end - t.begin, gscale, s);
  }
}

void host_adamw(HostThreads& pool, float* p, const float* g, float* m, float* v, int64_t n, const AdamHyper& h, float gscale,
                bool decay) {
  const math::AdamScalars s = math::adam_scalars(h.lr, h.beta1, h.beta2, h.eps, h.weight_decay, h.t, decay);
  pool.for_shares(n, [&](int64_t begin, int64_t end) {
    adamw_span(p + begin, g + begin, m + begin, v + begin, end - begin, gscale, s);
  });
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
#pragma omp parallel num_threads(c.threads)
    {
      const Span t = thread_span(to - from);
      adamw_span(p + t.begin, g + t.begin, mk + t.begin, vk + t.begin, t.end - t.begin, gscale, s);
    }
  }
}

}  // namespace stow
