// Measures this machine for the cost model's `cpu` target, with the thread count the plans run with,
// and prints one JSON line:
//   gemm           [M, K, N, FLOP/s] of cblas_sgemm at products of a training step's proportions (1024
//                  tokens by a width of 64 to 2048): small products run well below the large ones
//   attention      Stowage's own attention kernels (runtime/cpu/kernels_attention.cpp, linked in), FLOP/s
//                  as ir/flops.ts counts them, forward and backward, on a grid of sequence lengths T
//                  and head widths D: one head is a few small sgemms and a softmax, far from sgemm peak
//   softmax_rate   logits per second of the fused LM head's softmax pass (a row max, then a sum of
//                  exponentials, with the kernels' own helpers) over one 1024 x 4096 tile
//   element_rates  elements/s of the runtime's GELU and LayerNorm kernels (forward and backward) and
//                  its transpose, and of the AdamW loop below: kernels that compute or gather more than
//                  a triad does
//   stream         [bytes, bytes/s] of an OpenMP triad a = b + s*c at sizes from in-cache to far beyond
//                  (what the other elementwise kernels stream)
//   memcpy_bytes   bytes/s of one thread's memcpy (the transfer engine's copy thread)
//   adamw_bytes    bytes/s of an OpenMP AdamW loop, counted as the cost model counts it (28 per element)
//   disk           with DISK_DIR: {path, direct, write_bytes, read_bytes}: bytes/s of writing a file in that
//                  folder and reading it back (cpu_probe_disk.cpp), the disk tier's model data traffic;
//                  null without
// Each is the median of REPEATS timed runs (of several calls where one call is short) after one warm-up
// run. The whole probe takes a few seconds (and a few more with DISK_DIR).
// Usage: cpu_probe THREADS REPEATS [DISK_DIR]
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "cpu/kernels.h"
#include "cpu/kernels_common.h"
#include "cpu_probe_disk.h"

using stow::detail::lane_sum;
using stow::detail::row_max;
using stow::detail::vexp;

namespace {

using Floats = std::vector<float>;

double now_seconds() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

Floats filled(int64_t n, float scale) {
  Floats p(n);
  for (int64_t i = 0; i < n; i++) p[i] = float(i % 13) * scale + 0.5f;
  return p;
}

int repeats = 5;

// Median seconds of one call of work, over `repeats` timed runs of `calls` calls each, after one warm-up
// run. Other processes on a shared machine stall it in bursts of milliseconds: runs of several
// milliseconds each keep one burst from setting a rate.
double median_seconds(const std::function<void()>& work, int calls = 1) {
  std::vector<double> t(repeats);
  for (int i = 0; i < calls; i++) work();
  for (double& s : t) {
    const double t0 = now_seconds();
    for (int i = 0; i < calls; i++) work();
    s = (now_seconds() - t0) / calls;
  }
  std::sort(t.begin(), t.end());
  return t[repeats / 2];
}

std::string gemm_rates() {
  std::string out;
  const int M = 1024;
  for (int n : {64, 128, 256, 512, 1024, 2048}) {
    Floats a = filled(int64_t(M) * n, 0.25f), b = filled(int64_t(n) * n, 0.5f), c(int64_t(M) * n);
    const double flops = 2.0 * M * n * n;
    const double s = median_seconds([&] {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    }, std::max(1, int((1 << 30) / flops)));
    char row[96];
    std::snprintf(row, sizeof row, "%s[%d,%d,%d,%.6g]", out.empty() ? "" : ",", M, n, n, flops / s);
    out += row;
  }
  return "[" + out + "]";
}

// Forward and backward FLOP/s of the attention kernels at one T and D (ir/flops.ts: 2 and 5 products
// of 2 T^2 D per head). Enough heads that a call does about 64 MFLOP of forward work.
std::pair<double, double> attention_rates(int threads, int64_t T, int64_t D) {
  const double head_flops = 2.0 * T * T * D;
  const int64_t BH = std::max<int64_t>(1, int64_t(std::ceil((1 << 26) / (2 * head_flops))));
  const int64_t n = BH * T * D;
  Floats q = filled(n, 0.01f), k = filled(n, 0.02f), v = filled(n, 0.03f), dy = filled(n, 0.01f);
  Floats y(n), lse(BH * T), dq(n), dk(n), dv(n);
  Floats arena(2 * T * T);
  stow::Ctx c;
  c.arena = reinterpret_cast<uint8_t*>(arena.data());
  c.arena_bytes = c.ws_bytes = int64_t(arena.size()) * 4;
  c.threads = threads;
  c.node = "cpu_probe attention";
  const double fwd = median_seconds([&] { stow::attention_fwd(c, y.data(), lse.data(), q.data(), k.data(), v.data(), BH, T, D); }, 4);
  const double bwd = median_seconds([&] {
    stow::attention_bwd(c, dq.data(), dk.data(), dv.data(), q.data(), k.data(), v.data(), y.data(), lse.data(), dy.data(), BH, T, D);
  }, 2);
  return {2 * BH * head_flops / fwd, 5 * BH * head_flops / bwd};
}

std::string attention_grid(int threads) {
  const std::vector<int64_t> Ts = {64, 128, 256, 512, 1024}, Ds = {32, 64, 128};
  std::string fwd, bwd;
  for (int64_t T : Ts) {
    std::string f, b;
    for (int64_t D : Ds) {
      const auto [rf, rb] = attention_rates(threads, T, D);
      char x[40];
      std::snprintf(x, sizeof x, "%s%.6g", f.empty() ? "" : ",", rf);
      f += x;
      std::snprintf(x, sizeof x, "%s%.6g", b.empty() ? "" : ",", rb);
      b += x;
    }
    fwd += (fwd.empty() ? "[" : ",[") + f + "]";
    bwd += (bwd.empty() ? "[" : ",[") + b + "]";
  }
  auto list = [](const std::vector<int64_t>& v) {
    std::string s;
    for (int64_t x : v) s += (s.empty() ? "" : ",") + std::to_string(x);
    return "[" + s + "]";
  };
  return "{\"T\":" + list(Ts) + ",\"D\":" + list(Ds) + ",\"forward\":[" + fwd + "],\"backward\":[" + bwd + "]}";
}

// The tile the LM head's kernels use for 1024 tokens (ir/passes/fuse_lm_head.ts). Not constants: the
// compiler would otherwise warn about the helpers' remainder loops, which these sizes never run.
int64_t tile_rows = 1024, tile_cols = 4096;

// The LM head's per-tile softmax pass, as runtime/cpu/kernels_lm_head.cpp runs it.
double softmax_rate(int threads) {
  const int64_t rows = tile_rows, cols = tile_cols;
  Floats tile = filled(rows * cols, 0.001f), sum(rows);
  const double s = median_seconds([&] {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t r = 0; r < rows; r++) {
      const float* row = tile.data() + r * cols;
      const float mx = row_max(row, cols);
      sum[r] = lane_sum<float>(cols, [&](int64_t j) { return vexp(row[j] - mx); });
    }
  });
  return double(rows * cols) / s;
}

// Triad bandwidth by the bytes one pass moves (12 a element, as the cost model counts an elementwise
// kernel's inputs and outputs), from 3 MiB to 192 MiB: small kernels' operands stay in cache. Small
// sizes repeat the pass so that each timed run is about as long as the largest one.
std::string stream_rates(float* a, const float* b, const float* c, int64_t most) {
  std::string out;
  for (int64_t n = most >> 6; n <= most; n <<= 2) {
    const int64_t passes = most / n;
    const double s = median_seconds([&] {
      for (int64_t p = 0; p < passes; p++) {
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) a[i] = b[i] + 0.5f * c[i];
      }
    });
    char row[64];
    std::snprintf(row, sizeof row, "%s[%.6g,%.6g]", out.empty() ? "" : ",", 12.0 * n, 12.0 * n * passes / s);
    out += row;
  }
  return "[" + out + "]";
}

// Elements per second of the runtime's own kernels for the elementwise ops that do more than stream
// (exponentials, row statistics, strided reads), at 2 Mi elements: an activation of a small model's step.
std::string element_rates(int threads) {
  const int64_t n = 2 << 20, rows = 4096, C = n / rows;
  Floats x = filled(n, 0.001f), dy = filled(n, 0.002f), y(n), dx(n), w = filled(C, 0.1f), b = filled(C, 0.2f), dw(C), db(C);
  Floats arena(2 * rows);
  stow::Ctx c;
  c.arena = reinterpret_cast<uint8_t*>(arena.data());
  c.arena_bytes = c.ws_bytes = int64_t(arena.size()) * 4;
  c.threads = threads;
  c.node = "cpu_probe elementwise";
  // [B, T, heads, D] to [B, heads, T, D], as attention's inputs are laid out (D = 64, as GPT-2's heads).
  static const int64_t shape[] = {16, 256, 8, n / (16 * 256 * 8)};
  static const int perm[] = {0, 2, 1, 3};
  const std::pair<const char*, std::function<void()>> ops[] = {
      {"gelu", [&] { stow::gelu_fwd(c, y.data(), x.data(), n); }},
      {"gelu_bwd", [&] { stow::gelu_bwd(c, dx.data(), x.data(), dy.data(), n); }},
      {"layernorm", [&] { stow::layernorm_fwd(c, y.data(), x.data(), w.data(), b.data(), rows, C, 1e-5f); }},
      {"layernorm_bwd", [&] { stow::layernorm_bwd(c, dx.data(), dw.data(), db.data(), x.data(), w.data(), dy.data(), rows, C, 1e-5f); }},
      {"transpose", [&] { stow::permute(c, y.data(), x.data(), 4, shape, perm); }},
  };
  std::string out;
  for (const auto& [name, run] : ops) {
    char row[80];
    std::snprintf(row, sizeof row, "%s\"%s\":%.6g", out.empty() ? "" : ",", name, double(n) / median_seconds(run, 4));
    out += row;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 && argc != 4) {
    std::fprintf(stderr, "usage: cpu_probe THREADS REPEATS [DISK_DIR]\n");
    return 2;
  }
  const int threads = std::atoi(argv[1]);
  repeats = std::atoi(argv[2]);
  if (threads <= 0 || repeats <= 0) {
    std::fprintf(stderr, "cpu_probe: every argument must be positive\n");
    return 2;
  }
  openblas_set_num_threads(threads);
  omp_set_num_threads(threads);

  const std::string gemm = gemm_rates();
  const std::string attention = attention_grid(threads);
  const double softmax = softmax_rate(threads);
  const std::string elements = element_rates(threads);

  // 16 Mi floats (64 MiB) an array: far beyond any core's cache, as a large step's activations are.
  const int64_t len = 16 << 20;
  Floats a = filled(len, 0.1f), b = filled(len, 0.01f), c = filled(len, 0.02f), d = filled(len, 0.001f);
  const std::string stream = stream_rates(a.data(), b.data(), c.data(), len);
  const double copy_s = median_seconds([&] { std::memcpy(a.data(), b.data(), sizeof(float) * len); });
  const double adamw_s = median_seconds([&] {
    float *p = a.data(), *m = c.data(), *v = d.data();
    const float* g = b.data();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < len; i++) {
      const float mi = m[i] * 0.9f + 0.1f * g[i];
      const float vi = v[i] * 0.95f + 0.05f * g[i] * g[i];
      m[i] = mi;
      v[i] = vi;
      p[i] = p[i] * 0.9999f - 1e-3f * (mi / (std::sqrt(vi) / 0.3f + 1e-8f));
    }
  });

  std::string disk = "null";
  if (argc == 4) {
    try {
      disk = disk_rates(argv[3], repeats);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "cpu_probe: %s\n", e.what());
      return 1;
    }
  }

  // AdamW on the device is this loop too (runtime/cpu/kernels_adamw.cpp), so its rate is one of the elements'.
  std::printf("{\"threads\":%d,\"gemm\":%s,\"attention\":%s,\"softmax_rate\":%.6g,\"element_rates\":{%s,\"adamw\":%.6g},"
              "\"stream\":%s,\"memcpy_bytes\":%.6g,\"adamw_bytes\":%.6g,\"disk\":%s}\n",
              threads, gemm.c_str(), attention.c_str(), softmax, elements.c_str(), len / adamw_s, stream.c_str(),
              4.0 * len / copy_s, 28.0 * len / adamw_s, disk.c_str());
  return 0;
}
