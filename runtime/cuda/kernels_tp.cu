// Tensor-parallel kernels on the GPU, with the contracts of runtime/core/kernel_list.h: the collectives, on
// the context's communicator (NCCL under --tp, comm_nccl.h; queued on the compute stream), counting calls
// and bytes as the CPU's do, and the vocabulary-parallel cross-entropy, whose formulas are kernel_math.h's.
#include <algorithm>
#include <string>

#include "comm/comm.h"
#include "launch.h"

namespace stow::cuda {
namespace {

Comm& comm_of(const Ctx& c) {
  if (c.comm == nullptr) throw Error(std::string("internal: a collective ran without a communicator (node ") + c.node + ")");
  return *c.comm;
}

void count(Ctx& c, int64_t bytes) {
  c.comm_calls += 1;
  c.comm_bytes += bytes;
}

void copy_on_device(const Ctx& c, void* out, const void* in, int64_t bytes) {
  if (out == in || bytes == 0) return;
  check(cudaMemcpyAsync(out, in, size_t(bytes), cudaMemcpyDeviceToDevice, runtime(c).compute()),
        std::string("a device copy (node ") + c.node + ")");
}

// The vocabulary columns this rank holds that are not padding: [0, valid).
int64_t valid_columns(const Ctx& c, int64_t V, int64_t vocab) {
  return std::max<int64_t>(0, std::min<int64_t>(V, vocab - int64_t(c.rank) * V));
}

// One block per row of logits [N, V]: the max of its first `valid` columns.
__global__ void row_max_kernel(float* max, const float* logits, int64_t V, int64_t valid) {
  __shared__ float shared[32];
  const float* x = logits + int64_t(blockIdx.x) * V;
  float mx = -INFINITY;
  for (int64_t i = threadIdx.x; i < valid; i += blockDim.x) mx = math::max_f(mx, x[i]);
  mx = block_reduce<true>(mx, shared);
  if (threadIdx.x == 0) max[blockIdx.x] = mx;
}

// One block per row: sums[n] = sum of exp(logit - max[n]) over the valid columns, sums[N + n] = the
// target's logit when this rank holds it, else 0.
__global__ void row_sums_kernel(float* sums, const float* logits, const int32_t* targets, const float* max, int64_t N,
                                int64_t V, int64_t valid, int64_t first) {
  __shared__ float shared[32];
  const int64_t n = blockIdx.x;
  const float* x = logits + n * V;
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < valid; i += blockDim.x) sum += math::vexp(x[i] - max[n]);
  sum = block_reduce<false>(sum, shared);
  if (threadIdx.x == 0) {
    sums[n] = sum;
    const int64_t t = targets[n] - first;
    sums[N + n] = t >= 0 && t < valid ? x[t] : 0.0f;
  }
}

}  // namespace

void all_reduce(Ctx& c, float* out, const float* in, int64_t n, bool max) {
  c.touch(out, n * 4);
  copy_on_device(c, out, in, n * 4);
  if (c.ranks > 1) comm_of(c).all_reduce(out, n, max ? Reduce::Max : Reduce::Sum);
  count(c, n * 4);
}

// Sums over the data-parallel group on NCCL, then scales for the mean on the compute stream, after the sum.
void dp_all_reduce(Ctx& c, float* out, const float* in, int64_t n, bool mean) {
  if (c.dp_ranks > 1 && c.dp_comm == nullptr)
    throw Error(std::string("internal: a data-parallel collective ran without a data-parallel communicator (node ") + c.node + ")");
  c.touch(out, n * 4);
  copy_on_device(c, out, in, n * 4);
  if (c.dp_ranks > 1) c.dp_comm->all_reduce(out, n, Reduce::Sum);
  const float scale = 1.0f / float(c.dp_ranks);
  if (mean) for_each(c, "dp_all_reduce", n, [=] __device__(int64_t i) { out[i] *= scale; });
  count(c, n * 4);
}

// The copy goes on the compute stream, before the communication stream's event, so in is free at once.
int64_t dp_all_reduce_start(Ctx& c, float* out, const float* in, int64_t n) {
  if (c.dp_ranks > 1 && c.dp_comm == nullptr)
    throw Error(std::string("internal: a data-parallel collective ran without a data-parallel communicator (node ") + c.node + ")");
  c.touch(out, n * 4);
  copy_on_device(c, out, in, n * 4);
  count(c, n * 4);
  return c.dp_ranks > 1 ? c.dp_comm->start_all_reduce(out, n) : 0;
}

// As zero_reduce_scatter_wait: the mean on the compute stream, after the wait.
void dp_all_reduce_wait(Ctx& c, int64_t ticket, float* out, int64_t n, bool mean) {
  wait_collective(c, ticket);
  node_uses(c, {{out, n * 4}}, {{out, n * 4}});
  const float scale = 1.0f / float(c.dp_ranks);
  if (mean) for_each(c, "dp_all_reduce", n, [=] __device__(int64_t i) { out[i] *= scale; });
}

void zero_gather(Ctx& c, float* chunk, int64_t shard) {
  c.touch(chunk, int64_t(c.dp_ranks) * shard * 4);
  if (c.dp_ranks > 1) {
    if (c.dp_comm == nullptr)
      throw Error(std::string("internal: a ZeRO gather ran without a data-parallel communicator (node ") + c.node + ")");
    c.dp_comm->all_gather(chunk + int64_t(c.dp_rank) * shard, chunk, shard * 4);
  }
  count(c, int64_t(c.dp_ranks) * shard * 4);
}

// The collective runs on the data-parallel communicator's own stream (cuda/comm_nccl.h) until its wait;
// at one rank it is a copy on the compute stream.
int64_t zero_all_gather_start(Ctx& c, float* out, const float* shard_in, int64_t shard) {
  const int64_t n = int64_t(c.dp_ranks) * shard;
  c.touch(out, n * 4);
  count(c, n * 4);
  if (c.dp_ranks == 1) {
    copy_on_device(c, out, shard_in, shard * 4);
    return 0;
  }
  if (c.dp_comm == nullptr)
    throw Error(std::string("internal: a ZeRO 3 gather ran without a data-parallel communicator (node ") + c.node + ")");
  return c.dp_comm->start_all_gather(shard_in, out, shard * 4);
}

void wait_collective(Ctx& c, int64_t ticket) {
  if (ticket > 0) c.dp_comm->finish(ticket);
}

// NCCL moves its collectives on by itself.
void progress_collectives(Ctx&) {}

void zero_pack(Ctx& c, float* out, const float* const* grads, const int64_t* offsets, const int64_t* sizes, int64_t count,
               int64_t shard) {
  const int64_t n = int64_t(c.dp_ranks) * shard;
  c.touch(out, n * 4);
  check(cudaMemsetAsync(out, 0, size_t(n) * 4, runtime(c).compute()), std::string("zeroing a packed chunk (node ") + c.node + ")");
  for (int64_t k = 0; k < count; k++) copy_on_device(c, out + offsets[k], grads[k], sizes[k] * 4);
}

int64_t zero_reduce_scatter_start(Ctx& c, float* out, const float* in, int64_t shard) {
  c.touch(out, shard * 4);
  count(c, int64_t(c.dp_ranks) * shard * 4);
  if (c.dp_ranks == 1) {
    copy_on_device(c, out, in, shard * 4);
    return 0;
  }
  if (c.dp_comm == nullptr)
    throw Error(std::string("internal: a ZeRO reduce-scatter ran without a data-parallel communicator (node ") + c.node + ")");
  return c.dp_comm->start_reduce_scatter(in, out, shard);
}

// The mean is taken on the compute stream once the sum has arrived; the race checker sees that write
// after the wait (the wait node declares no ranges of its own).
void zero_reduce_scatter_wait(Ctx& c, int64_t ticket, float* out, int64_t shard) {
  wait_collective(c, ticket);
  node_uses(c, {{out, shard * 4}}, {{out, shard * 4}});
  const float scale = 1.0f / float(c.dp_ranks);
  for_each(c, "zero_reduce_scatter", shard, [=] __device__(int64_t i) { out[i] *= scale; });
}

// NCCL gathers whole blocks, rank 0's first; [rows, ranks * cols] interleaves them by row.
void all_gather(Ctx& c, float* out, const float* in, int64_t rows, int64_t cols) {
  const int64_t ranks = c.ranks;
  c.touch(out, rows * ranks * cols * 4);
  if (ranks == 1) {
    copy_on_device(c, out, in, rows * cols * 4);
  } else if (rows == 1) {
    comm_of(c).all_gather(in, out, cols * 4);
  } else {
    float* blocks = static_cast<float*>(c.workspace(rows * ranks * cols * 4));
    comm_of(c).all_gather(in, blocks, rows * cols * 4);
    for_each(c, "all_gather interleave", rows * ranks * cols, [=] __device__(int64_t i) {
      const int64_t r = i / (ranks * cols), k = (i / cols) % ranks, j = i % cols;
      out[i] = blocks[(k * rows + r) * cols + j];
    });
  }
  count(c, rows * ranks * cols * 4);
}

void reduce_scatter(Ctx& c, float* out, const float* in, int64_t rows, int64_t cols) {
  const int64_t ranks = c.ranks;
  c.touch(out, rows * cols * 4);
  if (ranks == 1) {
    copy_on_device(c, out, in, rows * cols * 4);
  } else if (rows == 1) {
    comm_of(c).reduce_scatter(in, out, cols);
  } else {
    float* blocks = static_cast<float*>(c.workspace(rows * ranks * cols * 4));
    for_each(c, "reduce_scatter blocks", rows * ranks * cols, [=] __device__(int64_t i) {
      const int64_t r = i / (ranks * cols), k = (i / cols) % ranks, j = i % cols;
      blocks[(k * rows + r) * cols + j] = in[i];
    });
    comm_of(c).reduce_scatter(blocks, out, rows * cols);
  }
  count(c, rows * ranks * cols * 4);
}

void broadcast(Ctx& c, void* buf, int64_t bytes, int root) {
  c.touch(buf, bytes);
  if (c.ranks > 1) comm_of(c).broadcast(buf, bytes, root);
  count(c, bytes);
}

void shard_slice(Ctx& c, float* out, const float* in, int64_t rows, int64_t cols) {
  c.touch(out, rows * cols * 4);
  const int64_t ranks = c.ranks, from = int64_t(c.rank) * cols;
  for_each(c, "shard_slice", rows * cols, [=] __device__(int64_t i) { out[i] = in[(i / cols) * ranks * cols + from + i % cols]; });
}

void cross_entropy_vp_max(Ctx& c, float* max, const float* logits, int64_t N, int64_t V, int64_t vocab) {
  c.touch(max, N * 4);
  if (N <= 0) return;
  STOW_LAUNCH(row_max_kernel, unsigned(N), kBlock, runtime(c).compute())(max, logits, V, valid_columns(c, V, vocab));
  check_launch(c, "cross_entropy_vp_max");
}

// Target ids are checked by the data loader before they reach the device.
void cross_entropy_vp_sums(Ctx& c, float* sums, const float* logits, const int32_t* targets, const float* max,
                           int64_t N, int64_t V, int64_t vocab) {
  c.touch(sums, 2 * N * 4);
  if (N <= 0) return;
  STOW_LAUNCH(row_sums_kernel, unsigned(N), kBlock, runtime(c).compute())(
      sums, logits, targets, max, N, V, valid_columns(c, V, vocab), int64_t(c.rank) * V);
  check_launch(c, "cross_entropy_vp_sums");
}

void cross_entropy_vp(Ctx& c, float* loss, const float* max, const float* sums, int64_t N) {
  c.touch(loss, 4);
  // The mean of the row losses: max[n] + log(sums[n]) - sums[N + n], the target's logit.
  STOW_LAUNCH(mean_loss_kernel, 1, kBlock, runtime(c).compute())(
      loss, N, [=] __device__(int64_t n) { return math::row_loss(max[n], sums[N + n], sums[n]); });
  check_launch(c, "cross_entropy_vp");
}

// Each element reads its own logit before writing its gradient: dlogits may be placed over the logits.
void cross_entropy_vp_bwd(Ctx& c, float* dlogits, const float* logits, const int32_t* targets, const float* max,
                          const float* sums, const float* dloss, int64_t N, int64_t V, int64_t vocab) {
  c.touch(dlogits, N * V * 4);
  const int64_t valid = valid_columns(c, V, vocab), first = int64_t(c.rank) * V;
  for_each(c, "cross_entropy_vp_bwd", N * V, [=] __device__(int64_t i) {
    const int64_t n = i / V, j = i % V;
    if (j >= valid) {
      dlogits[i] = 0.0f;
      return;
    }
    const float prob = math::vexp(logits[i] - max[n]) * (1.0f / sums[n]);
    dlogits[i] = math::cross_entropy_grad(prob, targets[n] - first == j, dloss[0] / float(N));
  });
}

}  // namespace stow::cuda
