// Checks the tensor-parallel kernels (runtime/core/kernel_list.h, runtime/cpu/kernels_tp.cpp) against naive
// double-precision references written here. Ranks are simulated: the rank-local kernels run once per rank
// (Ctx::rank), and their partial results are combined here as the all-reduces of the plan would; the
// collectives run against a fake communicator that holds the other ranks' tensors. Prints one line per
// check and a final "N passed, M failed"; exits 1 on any failure.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <memory>
#include <vector>

#include "comm/comm.h"
#include "cpu/kernels.h"
#include "core/positions_by_row.h"

using namespace stow;
using Floats = std::vector<float>;

namespace {

int g_passed = 0, g_failed = 0;

void check(const std::string& name, const Floats& got, const std::vector<double>& want, double tol) {
  double worst = 0;
  bool ok = got.size() == want.size();
  for (size_t i = 0; ok && i < got.size(); i++) {
    const double err = std::fabs(got[i] - want[i]) / (1e-6 + std::fabs(want[i]));
    worst = std::max(worst, err);
    ok = err <= tol;
  }
  (ok ? g_passed : g_failed)++;
  std::printf("%s %s (worst relative error %.2g)\n", ok ? "PASS" : "FAIL", name.c_str(), worst);
}

Floats random_floats(size_t n, float lo, float hi, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  Floats v(n);
  for (float& x : v) x = d(gen);
  return v;
}

// A communicator of `size` ranks seen from `rank`: the other ranks' tensors are given up front.
struct FakeComm final : Comm {
  int r, n;
  std::vector<Floats> others;  // indexed by rank; others[r] unused
  int rank() const override { return r; }
  int size() const override { return n; }
  const float* of(int k, const void* mine) const { return k == r ? static_cast<const float*>(mine) : others[k].data(); }
  void all_reduce(float* buf, int64_t len, Reduce op) override {
    const Floats mine(buf, buf + len);
    for (int64_t i = 0; i < len; i++)
      for (int k = 0; k < n; k++) {
        const float x = of(k, mine.data())[i];
        buf[i] = k == 0 ? x : op == Reduce::Sum ? buf[i] + x : std::max(buf[i], x);
      }
  }
  void all_gather(const void* send, void* recv, int64_t bytes) override {
    for (int k = 0; k < n; k++) std::memcpy(static_cast<char*>(recv) + k * bytes, of(k, send), size_t(bytes));
  }
  void reduce_scatter(const float* send, float* recv, int64_t len) override {
    for (int64_t i = 0; i < len; i++) {
      recv[i] = 0;
      for (int k = 0; k < n; k++) recv[i] += of(k, send)[r * len + i];
    }
  }
  void broadcast(void*, int64_t, int) override {}
  void gather(const void*, void*, int64_t, int) override {}
  std::unique_ptr<Comm> split(int, int) override { std::abort(); }  // the kernels never split
  [[noreturn]] void abort(int) override { std::abort(); }
};

// A context over a private arena large enough for the checks, as rank `rank` of `ranks`.
struct Arena {
  std::vector<uint8_t> bytes = std::vector<uint8_t>(1 << 22);
  Ctx ctx;
  Arena(int rank, int ranks, Comm* comm = nullptr) {
    ctx.arena = bytes.data();
    ctx.arena_bytes = int64_t(bytes.size());
    ctx.rank = rank;
    ctx.ranks = ranks;
    ctx.comm = comm;
    ctx.ws_offset = 1 << 21;
    ctx.ws_bytes = 1 << 20;
  }
  float* at(int64_t offset) { return reinterpret_cast<float*>(bytes.data() + offset); }
};

// Vocabulary-parallel cross-entropy of N rows over 3 ranks of V = 4 columns, vocab 10 (the last rank
// holds 2 columns of padding): the loss and its gradient against the whole-vocabulary formula.
void check_cross_entropy_vp() {
  const int64_t N = 5, V = 4, vocab = 10, ranks = 3;
  const Floats full = random_floats(N * vocab, -4, 4, 1);
  const std::vector<int32_t> targets = {0, 9, 4, 7, 3};
  std::vector<Floats> parts(ranks, Floats(N * V, 1e4f));  // padding columns hold junk the kernels must ignore
  for (int r = 0; r < ranks; r++)
    for (int64_t n = 0; n < N; n++)
      for (int64_t j = 0; j < V && r * V + j < vocab; j++) parts[r][n * V + j] = full[n * vocab + r * V + j];

  Floats max(N, -INFINITY), sums(2 * N, 0.0f);
  for (int r = 0; r < ranks; r++) {
    Arena a(r, ranks);
    cross_entropy_vp_max(a.ctx, a.at(0), parts[r].data(), N, V, vocab);
    for (int64_t n = 0; n < N; n++) max[n] = std::max(max[n], a.at(0)[n]);
  }
  for (int r = 0; r < ranks; r++) {
    Arena a(r, ranks);
    cross_entropy_vp_sums(a.ctx, a.at(0), parts[r].data(), targets.data(), max.data(), N, V, vocab);
    for (int64_t i = 0; i < 2 * N; i++) sums[i] += a.at(0)[i];
  }
  std::vector<double> want_loss(1, 0.0), want_grad;
  const double dloss = 1.3;
  std::vector<double> grad(N * vocab);
  for (int64_t n = 0; n < N; n++) {
    double m = -INFINITY, s = 0;
    for (int64_t v = 0; v < vocab; v++) m = std::max(m, double(full[n * vocab + v]));
    for (int64_t v = 0; v < vocab; v++) s += std::exp(full[n * vocab + v] - m);
    want_loss[0] += (m + std::log(s) - full[n * vocab + targets[n]]) / N;
    for (int64_t v = 0; v < vocab; v++)
      grad[n * vocab + v] = dloss * (std::exp(full[n * vocab + v] - m) / s - (v == targets[n])) / N;
  }
  Arena a(0, ranks);
  cross_entropy_vp(a.ctx, a.at(0), max.data(), sums.data(), N);
  check("cross_entropy_vp loss over 3 ranks with padding", Floats(a.at(0), a.at(0) + 1), want_loss, 1e-6);

  Floats got;
  std::vector<double> want;
  const float df = float(dloss);
  for (int r = 0; r < ranks; r++) {
    Arena b(r, ranks);
    cross_entropy_vp_bwd(b.ctx, b.at(0), parts[r].data(), targets.data(), max.data(), sums.data(), &df, N, V, vocab);
    for (int64_t n = 0; n < N; n++)
      for (int64_t j = 0; j < V; j++) {
        got.push_back(b.at(0)[n * V + j]);
        want.push_back(r * V + j < vocab ? grad[n * vocab + r * V + j] : 0.0);
      }
  }
  check("cross_entropy_vp_bwd over 3 ranks, zero on padding", got, want, 1e-5);
}

// The vocabulary-parallel embedding: the ranks' outputs sum to the whole lookup, and each rank's
// gradient rows are the sums over the positions of its tokens.
void check_embedding_vp() {
  const int64_t N = 7, C = 3, V = 4, vocab = 10, ranks = 3;
  const Floats table = random_floats(ranks * V * C, -1, 1, 2);  // rows past vocab are padding
  const Floats dy = random_floats(N * C, -1, 1, 3);
  const std::vector<int32_t> ids = {9, 0, 4, 4, 7, 3, 9};
  std::vector<double> out_sum(N * C, 0.0), want_out(N * C), want_grad(ranks * V * C, 0.0);
  Floats got_grad;
  bool grouped_same = true;
  for (int64_t n = 0; n < N; n++)
    for (int64_t c = 0; c < C; c++) {
      want_out[n * C + c] = table[ids[n] * C + c];
      want_grad[ids[n] * C + c] += dy[n * C + c];
    }
  for (int r = 0; r < ranks; r++) {
    Arena a(r, ranks);
    embedding_vp_fwd(a.ctx, a.at(0), table.data() + r * V * C, ids.data(), N, C, V, vocab);
    for (int64_t i = 0; i < N * C; i++) out_sum[i] += a.at(0)[i];
    embedding_vp_bwd(a.ctx, a.at(0), ids.data(), dy.data(), N, C, V);
    got_grad.insert(got_grad.end(), a.at(0), a.at(0) + V * C);
    // The CUDA kernel's way (positions_by_row.h, then each row summed in the order found) gives the
    // same bits, each row's positions increasing.
    std::vector<int32_t> start(V + 1), order(N);
    positions_by_row(ids.data(), N, r * V, V, start.data(), order.data());
    Floats grouped(V * C, 0.0f);
    for (int64_t v = 0; v < V; v++) {
      grouped_same = grouped_same && std::is_sorted(order.begin() + start[v], order.begin() + start[v + 1]);
      for (int32_t k = start[v]; k < start[v + 1]; k++)
        for (int64_t c = 0; c < C; c++) grouped[v * C + c] += dy[order[k] * C + c];
    }
    grouped_same = grouped_same && std::memcmp(grouped.data(), a.at(0), size_t(V * C) * 4) == 0;
  }
  check("embedding_vp_fwd summed over 3 ranks", Floats(out_sum.begin(), out_sum.end()), want_out, 0);
  check("embedding_vp_bwd on 3 ranks", got_grad, want_grad, 1e-6);
  check("positions_by_row on 3 ranks: embedding_vp_bwd's rows, bitwise", {float(grouped_same)}, {1.0}, 0);
}

// all_gather and reduce_scatter put each rank's columns in place (rank 1 of 3, 5 rows of 2 columns).
void check_collectives() {
  const int64_t rows = 5, cols = 2, ranks = 3;
  FakeComm comm;
  comm.r = 1;
  comm.n = int(ranks);
  comm.others = {random_floats(rows * cols, -1, 1, 4), {}, random_floats(rows * cols, -1, 1, 5)};
  const Floats mine = random_floats(rows * cols, -1, 1, 6);
  Arena a(1, int(ranks), &comm);
  all_gather(a.ctx, a.at(0), mine.data(), rows, cols);
  std::vector<double> want;
  for (int64_t r = 0; r < rows; r++)
    for (int64_t k = 0; k < ranks; k++)
      for (int64_t c = 0; c < cols; c++) want.push_back((k == 1 ? mine : comm.others[k])[r * cols + c]);
  check("all_gather along the last axis", Floats(a.at(0), a.at(0) + rows * ranks * cols), want, 0);

  // Each rank's [rows, ranks * cols] input; the other ranks send theirs as the kernel does, one block
  // of [rows, cols] per destination rank.
  const Floats wide = random_floats(rows * ranks * cols, -1, 1, 7);
  const std::vector<Floats> inputs = {random_floats(rows * ranks * cols, -1, 1, 8), wide, random_floats(rows * ranks * cols, -1, 1, 9)};
  for (int k : {0, 2}) {
    comm.others[k].assign(rows * ranks * cols, 0.0f);
    for (int64_t dest = 0; dest < ranks; dest++)
      for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) comm.others[k][(dest * rows + r) * cols + c] = inputs[k][r * ranks * cols + dest * cols + c];
  }
  reduce_scatter(a.ctx, a.at(0), wide.data(), rows, cols);
  want.clear();
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) {
      double s = 0;
      for (int64_t k = 0; k < ranks; k++) s += inputs[k][r * ranks * cols + cols + c];
      want.push_back(s);
    }
  check("reduce_scatter along the last axis", Floats(a.at(0), a.at(0) + rows * cols), want, 1e-6);
  comm.others = {random_floats(rows, -1, 1, 10), {}, random_floats(rows, -1, 1, 11)};
  const Floats x = random_floats(rows, -1, 1, 12);
  for (bool max : {false, true}) {
    all_reduce(a.ctx, a.at(0), x.data(), rows, max);
    want.clear();
    for (int64_t i = 0; i < rows; i++) {
      const double p = comm.others[0][i], q = x[i], u = comm.others[2][i];
      want.push_back(max ? std::max({p, q, u}) : p + q + u);
    }
    check(max ? "all_reduce max" : "all_reduce sum", Floats(a.at(0), a.at(0) + rows), want, 1e-6);
  }
  check("collectives counted", {float(a.ctx.comm_calls), float(a.ctx.comm_bytes)},
        {4.0, 2.0 * rows * ranks * cols * 4 + 2.0 * rows * 4}, 0);
}

// dp_all_reduce: the mean over the data-parallel communicator (rank 2 of 4), not the tensor-parallel one.
void check_dp_mean() {
  const int64_t n = 7, ranks = 4;
  FakeComm dp;
  dp.r = 2;
  dp.n = int(ranks);
  dp.others = {random_floats(n, -1, 1, 13), random_floats(n, -1, 1, 14), {}, random_floats(n, -1, 1, 15)};
  const Floats mine = random_floats(n, -1, 1, 16);
  Arena a(0, 1);  // no tensor-parallel communicator: the kernel must not use it
  a.ctx.dp_comm = &dp;
  a.ctx.dp_rank = 2;
  a.ctx.dp_ranks = int(ranks);
  dp_all_reduce(a.ctx, a.at(0), mine.data(), n, true);
  std::vector<double> want;
  for (int64_t i = 0; i < n; i++)
    want.push_back((double(dp.others[0][i]) + dp.others[1][i] + mine[i] + dp.others[3][i]) / double(ranks));
  check("dp_all_reduce mean over 4 ranks", Floats(a.at(0), a.at(0) + n), want, 1e-6);
  check("dp_all_reduce counted", {float(a.ctx.comm_calls), float(a.ctx.comm_bytes)}, {1.0, float(n * 4)}, 0);
}

}  // namespace

int main() {
  check_dp_mean();
  check_cross_entropy_vp();
  check_embedding_vp();
  check_collectives();
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
