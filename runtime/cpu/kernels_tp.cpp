// Tensor-parallel kernels: collectives over the context's communicator, and the vocabulary-parallel
// embedding and cross-entropy (each rank holds a contiguous range of the vocabulary).
#include "kernels.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <vector>

#include "comm/comm.h"
#include "kernels_common.h"

namespace stow {
using namespace detail;

namespace {

Comm& comm_of(Ctx& c) {
  if (c.comm == nullptr) fail(c, "internal: a collective ran without a communicator");
  return *c.comm;
}

void count(Ctx& c, int64_t bytes) {
  c.comm_calls += 1;
  c.comm_bytes += bytes;
}

// The vocabulary columns this rank holds that are not padding: [0, valid).
int64_t valid_columns(const Ctx& c, int64_t V, int64_t vocab) {
  return std::max<int64_t>(0, std::min<int64_t>(V, vocab - int64_t(c.rank) * V));
}

void check_ids(Ctx& c, const char* op, const int32_t* ids, int64_t N, int64_t vocab) {
  for (int64_t n = 0; n < N; n++)
    if (ids[n] < 0 || ids[n] >= vocab)
      fail(c, std::string(op) + ": token id " + std::to_string(ids[n]) + " at position " + std::to_string(n) +
                  " is outside the vocabulary of " + std::to_string(vocab));
}

}  // namespace

void all_reduce(Ctx& c, float* out, const float* in, int64_t n, bool max) {
  c.touch(out, n * 4);
  if (out != in) std::memcpy(out, in, size_t(n) * 4);
  comm_of(c).all_reduce(out, n, max ? Reduce::Max : Reduce::Sum);
  count(c, n * 4);
}

// Sums over the data-parallel group, then scales for the mean: with 2 or 4 ranks the scale is exact.
void dp_all_reduce(Ctx& c, float* out, const float* in, int64_t n, bool mean) {
  if (c.dp_comm == nullptr) fail(c, "internal: a data-parallel collective ran without a data-parallel communicator");
  c.touch(out, n * 4);
  if (out != in) std::memcpy(out, in, size_t(n) * 4);
  c.dp_comm->all_reduce(out, n, Reduce::Sum);
  const float scale = 1.0f / float(c.dp_ranks);
  if (mean)
#pragma omp parallel for schedule(static) num_threads(c.threads)
    for (int64_t i = 0; i < n; i++) out[i] *= scale;
  count(c, n * 4);
}

int64_t dp_all_reduce_start(Ctx& c, float* out, const float* in, int64_t n) {
  if (c.dp_comm == nullptr) fail(c, "internal: a data-parallel collective ran without a data-parallel communicator");
  c.touch(out, n * 4);
  if (out != in) std::memcpy(out, in, size_t(n) * 4);
  count(c, n * 4);
  return c.dp_comm->start_all_reduce(out, n);
}

void dp_all_reduce_wait(Ctx& c, int64_t ticket, float* out, int64_t n, bool mean) {
  wait_collective(c, ticket);
  const float scale = 1.0f / float(c.dp_ranks);
  if (mean)
#pragma omp parallel for schedule(static) num_threads(c.threads)
    for (int64_t i = 0; i < n; i++) out[i] *= scale;
}

void zero_gather(Ctx& c, float* chunk, int64_t shard) {
  c.touch(chunk, int64_t(c.dp_ranks) * shard * 4);
  if (c.dp_ranks > 1) {
    if (c.dp_comm == nullptr) fail(c, "internal: a ZeRO gather ran without a data-parallel communicator");
    c.dp_comm->all_gather(chunk + int64_t(c.dp_rank) * shard, chunk, shard * 4);
  }
  count(c, int64_t(c.dp_ranks) * shard * 4);
}

// The collective's buffers are the communicator's until its wait; at one rank it is a copy, done at once.
int64_t zero_all_gather_start(Ctx& c, float* out, const float* shard_in, int64_t shard) {
  const int64_t n = int64_t(c.dp_ranks) * shard;
  c.touch(out, n * 4);
  count(c, n * 4);
  if (c.dp_ranks == 1) {
    std::memcpy(out, shard_in, size_t(shard) * 4);
    return 0;
  }
  if (c.dp_comm == nullptr) fail(c, "internal: a ZeRO 3 gather ran without a data-parallel communicator");
  return c.dp_comm->start_all_gather(shard_in, out, shard * 4);
}

void wait_collective(Ctx& c, int64_t ticket) {
  if (ticket <= 0) return;
  const auto since = std::chrono::steady_clock::now();
  c.dp_comm->finish(ticket);
  c.comm_wait_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

void progress_collectives(Ctx& c) {
  if (c.dp_comm != nullptr) c.dp_comm->progress();
}

void zero_pack(Ctx& c, float* out, const float* const* grads, const int64_t* offsets, const int64_t* sizes, int64_t count,
               int64_t shard) {
  const int64_t n = int64_t(c.dp_ranks) * shard;
  c.touch(out, n * 4);
  std::memset(out, 0, size_t(n) * 4);
  for (int64_t k = 0; k < count; k++) std::memcpy(out + offsets[k], grads[k], size_t(sizes[k]) * 4);
}

int64_t zero_reduce_scatter_start(Ctx& c, float* out, const float* in, int64_t shard) {
  c.touch(out, shard * 4);
  count(c, int64_t(c.dp_ranks) * shard * 4);
  if (c.dp_ranks == 1) {
    std::memcpy(out, in, size_t(shard) * 4);
    return 0;
  }
  if (c.dp_comm == nullptr) fail(c, "internal: a ZeRO reduce-scatter ran without a data-parallel communicator");
  return c.dp_comm->start_reduce_scatter(in, out, shard);
}

void zero_reduce_scatter_wait(Ctx& c, int64_t ticket, float* out, int64_t shard) {
  wait_collective(c, ticket);
  const float scale = 1.0f / float(c.dp_ranks);
#pragma omp parallel for schedule(static) num_threads(c.threads)
  for (int64_t i = 0; i < shard; i++) out[i] *= scale;
}

void all_gather(Ctx& c, float* out, const float* in, int64_t rows, int64_t cols) {
  const int64_t ranks = c.ranks;
  c.touch(out, rows * ranks * cols * 4);
  if (rows == 1) {
    comm_of(c).all_gather(in, out, cols * 4);
  } else {
    float* blocks = static_cast<float*>(c.workspace(rows * ranks * cols * 4));
    comm_of(c).all_gather(in, blocks, rows * cols * 4);
#pragma omp parallel for schedule(static) num_threads(c.threads)
    for (int64_t r = 0; r < rows; r++)
      for (int64_t k = 0; k < ranks; k++) std::memcpy(out + (r * ranks + k) * cols, blocks + (k * rows + r) * cols, cols * 4);
  }
  count(c, rows * ranks * cols * 4);
}

void reduce_scatter(Ctx& c, float* out, const float* in, int64_t rows, int64_t cols) {
  const int64_t ranks = c.ranks;
  c.touch(out, rows * cols * 4);
  if (rows == 1) {
    comm_of(c).reduce_scatter(in, out, cols);
  } else {
    float* blocks = static_cast<float*>(c.workspace(rows * ranks * cols * 4));
#pragma omp parallel for schedule(static) num_threads(c.threads)
    for (int64_t r = 0; r < rows; r++)
      for (int64_t k = 0; k < ranks; k++) std::memcpy(blocks + (k * rows + r) * cols, in + (r * ranks + k) * cols, cols * 4);
    comm_of(c).reduce_scatter(blocks, out, rows * cols);
  }
  count(c, rows * ranks * cols * 4);
}

void broadcast(Ctx& c, void* buf, int64_t bytes, int root) {
  c.touch(buf, bytes);
  comm_of(c).broadcast(buf, bytes, root);
  count(c, bytes);
}

void shard_slice(Ctx& c, float* out, const float* in, int64_t rows, int64_t cols) {
  c.touch(out, rows * cols * 4);
  const int64_t from = int64_t(c.rank) * cols;
#pragma omp parallel for schedule(static) num_threads(c.threads)
  for (int64_t r = 0; r < rows; r++) std::memcpy(out + r * cols, in + r * c.ranks * cols + from, cols * 4);
}

void embedding_vp_fwd(Ctx& c, float* out, const float* table, const int32_t* idx, int64_t N, int64_t C, int64_t V,
                      int64_t vocab) {
  check_ids(c, "embedding", idx, N, vocab);
  c.touch(out, N * C * 4);
  const int64_t first = int64_t(c.rank) * V;
#pragma omp parallel for schedule(static) num_threads(c.threads)
  for (int64_t n = 0; n < N; n++) {
    const int64_t v = idx[n] - first;
    if (v >= 0 && v < V) std::memcpy(out + n * C, table + v * C, C * 4);
    else std::memset(out + n * C, 0, C * 4);
  }
}

// As embedding_bwd: each thread owns a range of rows and adds the positions that hit them in order.
void embedding_vp_bwd(Ctx& c, float* dtable, const int32_t* idx, const float* dy, int64_t N, int64_t C, int64_t V) {
  c.touch(dtable, V * C * 4);
  const int64_t first = int64_t(c.rank) * V;
#pragma omp parallel num_threads(c.threads)
  {
    const Span rows = thread_span(V);
    std::memset(dtable + rows.begin * C, 0, (rows.end - rows.begin) * C * 4);
    for (int64_t n = 0; n < N; n++) {
      const int64_t v = idx[n] - first;
      if (v >= rows.begin && v < rows.end) axpy(dtable + v * C, 1.0f, dy + n * C, C);
    }
  }
}

void cross_entropy_vp_max(Ctx& c, float* max, const float* logits, int64_t N, int64_t V, int64_t vocab) {
  c.touch(max, N * 4);
  const int64_t valid = valid_columns(c, V, vocab);
#pragma omp parallel for schedule(static) num_threads(c.threads)
  for (int64_t n = 0; n < N; n++) max[n] = valid > 0 ? row_max(logits + n * V, valid) : -INFINITY;
}

void cross_entropy_vp_sums(Ctx& c, float* sums, const float* logits, const int32_t* targets, const float* max,
                           int64_t N, int64_t V, int64_t vocab) {
  check_ids(c, "cross_entropy", targets, N, vocab);
  c.touch(sums, 2 * N * 4);
  const int64_t valid = valid_columns(c, V, vocab);
  const int64_t first = int64_t(c.rank) * V;
#pragma omp parallel for schedule(static) num_threads(c.threads)
  for (int64_t n = 0; n < N; n++) {
    const float* x = logits + n * V;
    const float mx = max[n];
    sums[n] = lane_sum<float>(valid, [&](int64_t i) { return vexp(x[i] - mx); });
    const int64_t t = targets[n] - first;
    sums[N + n] = t >= 0 && t < valid ? x[t] : 0.0f;
  }
}

// Row losses summed in double, thread by thread in order, as cross_entropy_fwd does.
void cross_entropy_vp(Ctx& c, float* loss, const float* max, const float* sums, int64_t N) {
  c.touch(loss, 4);
  std::vector<double> partial(c.threads, 0.0);
#pragma omp parallel num_threads(c.threads)
  {
    const Span rows = thread_span(N);
    double acc = 0.0;
    for (int64_t n = rows.begin; n < rows.end; n++) acc += double(math::row_loss(max[n], sums[N + n], sums[n]));
    partial[omp_get_thread_num()] = acc;
  }
  double total = 0.0;
  for (double p : partial) total += p;
  loss[0] = N > 0 ? float(total / double(N)) : 0.0f;
}

void cross_entropy_vp_bwd(Ctx& c, float* dlogits, const float* logits, const int32_t* targets, const float* max,
                          const float* sums, const float* dloss, int64_t N, int64_t V, int64_t vocab) {
  c.touch(dlogits, N * V * 4);
  const float f = dloss[0] / float(N);
  const int64_t valid = valid_columns(c, V, vocab);
  const int64_t first = int64_t(c.rank) * V;
#pragma omp parallel for schedule(static) num_threads(c.threads)
  for (int64_t n = 0; n < N; n++) {
    const float* x = logits + n * V;
    float* d = dlogits + n * V;
    const float inv = 1.0f / sums[n];
    const float mx = max[n];
    const int64_t t = targets[n] - first;
    // Read the target logit first: the plan may place dlogits over logits (in-place reuse).
    const float target_p = t >= 0 && t < valid ? vexp(x[t] - mx) * inv : 0.0f;
    for (int64_t i = 0; i < valid; i++) d[i] = math::cross_entropy_grad(vexp(x[i] - mx) * inv, false, f);
    for (int64_t i = valid; i < V; i++) d[i] = 0.0f;
    if (t >= 0 && t < valid) d[t] = math::cross_entropy_grad(target_p, true, f);
  }
}

// grad_norm's sum, without the square root: the split gradients' sums are all-reduced first.
void sum_squares(Ctx& c, float* out, const float* const* grads, const int64_t* sizes, int64_t count) {
  c.touch(out, 4);
  const double total = sum_of_squares(c, grads, sizes, count);
  out[0] = float(total);
}

void norm_from_squares(Ctx& c, float* out, const float* const* parts, int64_t count) {
  c.touch(out, 4);
  double total = 0.0;
  for (int64_t k = 0; k < count; k++) total += double(parts[k][0]);
  out[0] = float(std::sqrt(total));
}

}  // namespace stow
