// Checks every kernel of runtime/cpu/kernels.h against references written here, independently of the
// kernels: forward kernels against naive double-precision loops, backward kernels against central
// finite differences of those double-precision forwards. For each kernel it also checks that two
// runs with 2 threads are bitwise equal, that 1 and 2 threads agree, and that the kernel touched its
// outputs and asked for exactly the workspace kernels.h states (the arena high-water mark must end
// exactly at the end of the last output or workspace).
//
// Prints one line per check and a final "N passed, M failed"; exits 1 on any failure.
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "cpu/kernels.h"
#include "cpu/kernels_common.h"
#include "core/transfer_engine.h"
#include "cpu/host_adamw.h"

using namespace stow;
using Vec = std::vector<double>;
using Floats = std::vector<float>;
using Ints = std::vector<int32_t>;

namespace {

// ---------------------------------------------------------------------------------------------------
// Reporting and comparison

int g_passed = 0, g_failed = 0;

void report(bool ok, const std::string& name, const std::string& detail = "") {
  (ok ? g_passed : g_failed)++;
  std::printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", name.c_str(), detail.empty() ? "" : ": ", detail.c_str());
}

struct Tol {
  double atol, rtol;
};
const Tol kExact{0, 0};
const Tol kForward{1e-6, 1e-5};
const Tol kBackward{1e-5, 1e-4};

// "" when every got[i] is within atol + rtol |want[i]|, else a description of the worst element.
std::string mismatch(const Floats& got, const Vec& want, Tol tol) {
  if (got.size() != want.size())
    return "size " + std::to_string(got.size()) + ", expected " + std::to_string(want.size());
  double worst = 0;  // the largest error as a multiple of its tolerance; NaN counts as infinite
  size_t at = 0;
  bool bad = false;
  for (size_t i = 0; i < got.size(); i++) {
    const double err = std::fabs(double(got[i]) - want[i]), allowed = tol.atol + tol.rtol * std::fabs(want[i]);
    if (err <= allowed) continue;
    const double excess = std::isnan(err) ? INFINITY : err / allowed;
    if (!bad || excess > worst) worst = excess, at = i;
    bad = true;
  }
  if (!bad) return "";
  char buf[200];
  std::snprintf(buf, sizeof buf, "element %zu is %.9g, expected %.9g (tolerance %.1e + %.1e relative)", at,
                double(got[at]), want[at], tol.atol, tol.rtol);
  return buf;
}

Vec widen(const Floats& v) { return Vec(v.begin(), v.end()); }

Floats narrow(const Vec& v) { return Floats(v.begin(), v.end()); }

Vec concat(std::initializer_list<Vec> parts) {
  Vec out;
  for (const Vec& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

Floats concat_floats(std::initializer_list<Floats> parts) {
  Floats out;
  for (const Floats& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

std::mt19937 rng(20240607);

Floats random_floats(size_t n, float lo = -1, float hi = 1) {
  std::uniform_real_distribution<float> dist(lo, hi);
  Floats v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// ---------------------------------------------------------------------------------------------------
// The arena a kernel runs in: inputs first, then outputs (filled with NaN, so an element the kernel
// forgets to write fails the comparison), then the workspace.

class Arena {
 public:
  explicit Arena(int threads) {
    base_ = static_cast<uint8_t*>(std::aligned_alloc(64, kBytes));
    ctx.arena = base_;
    ctx.arena_bytes = kBytes;
    ctx.threads = threads;
    ctx.node = "kernels_check";
    ctx.ws_offset = 0;
    ctx.ws_bytes = 0;
    openblas_set_num_threads(threads);
  }
  ~Arena() { std::free(base_); }
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  template <class T>
  T* input(const std::vector<T>& v) {
    T* p = alloc<T>(v.size());
    std::memcpy(p, v.data(), v.size() * sizeof(T));
    return p;
  }
  float* output(size_t n) {
    float* p = alloc<float>(n);
    for (size_t i = 0; i < n; i++) p[i] = std::numeric_limits<float>::quiet_NaN();
    return p;
  }
  int32_t* output_i32(size_t n) {
    int32_t* p = alloc<int32_t>(n);
    for (size_t i = 0; i < n; i++) p[i] = -7;
    return p;
  }
  void workspace(int64_t bytes) {
    used_ = align(used_);
    ctx.ws_offset = used_;
    ctx.ws_bytes = bytes;
    used_ += bytes;
  }
  // The kernel wrote up to the end of the last thing allocated, and not beyond.
  bool accounting_ok() const { return ctx.high_water == used_; }
  std::string accounting() const {
    return "high-water " + std::to_string(ctx.high_water) + ", expected " + std::to_string(used_);
  }

  Ctx ctx;

 private:
  static constexpr int64_t kBytes = 64 << 20;
  static int64_t align(int64_t x) { return (x + 63) / 64 * 64; }
  template <class T>
  T* alloc(size_t n) {
    used_ = align(used_);
    T* p = reinterpret_cast<T*>(base_ + used_);
    used_ += int64_t(n * sizeof(T));
    if (used_ > kBytes) {
      std::fprintf(stderr, "kernels_check: test arena too small\n");
      std::exit(2);
    }
    return p;
  }
  uint8_t* base_;
  int64_t used_ = 0;
};

// What one run of a kernel produced: its outputs, concatenated, and whether its accounting held.
struct Outcome {
  Floats values;
  bool accounting_ok = false;
  std::string accounting;
};

template <class T>
void append(Floats& out, const T* p, size_t n) {
  for (size_t i = 0; i < n; i++) out.push_back(float(p[i]));
}

Outcome finish(const Arena& arena, Floats values) {
  return {std::move(values), arena.accounting_ok(), arena.accounting()};
}

using RunFn = std::function<Outcome(int threads)>;

// The four standard checks of one kernel case.
void check_kernel(const std::string& name, const RunFn& run, const Vec& want, Tol tol) {
  Outcome two, again, one;
  try {
    two = run(2);
    again = run(2);
    one = run(1);
  } catch (const std::exception& e) {
    report(false, name, std::string("threw: ") + e.what());
    return;
  }
  const std::string diff = mismatch(two.values, want, tol);
  report(diff.empty(), name + ": matches reference", diff);
  const bool same = two.values.size() == again.values.size() &&
                    std::memcmp(two.values.data(), again.values.data(), two.values.size() * 4) == 0;
  report(same, name + ": bitwise identical across runs with 2 threads");
  const std::string diff_threads = mismatch(one.values, widen(two.values), tol);
  report(diff_threads.empty(), name + ": 1 and 2 threads agree", diff_threads);
  const bool accounted = two.accounting_ok && one.accounting_ok;
  report(accounted, name + ": touches exactly its outputs and workspace",
         accounted ? "" : two.accounting_ok ? one.accounting : two.accounting);
}

// ---------------------------------------------------------------------------------------------------
// Finite differences: the gradient of a scalar function of x by central differences, in double.

Vec fd_grad(const Vec& x0, const std::function<double(const Vec&)>& f, double h = 1e-5) {
  Vec x = x0, g(x.size());
  for (size_t i = 0; i < x.size(); i++) {
    x[i] = x0[i] + h;
    const double up = f(x);
    x[i] = x0[i] - h;
    const double down = f(x);
    x[i] = x0[i];
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

// sum_i r[i] y[i]: the scalar whose gradient a backward kernel computes when given dy = r.
double project(const Vec& y, const Vec& r) {
  double s = 0;
  for (size_t i = 0; i < y.size(); i++) s += y[i] * r[i];
  return s;
}

// ---------------------------------------------------------------------------------------------------
// Naive double-precision references

Vec embedding_ref(const Vec& table, const Ints& idx, int64_t C) {
  Vec out;
  for (int32_t id : idx)
    for (int64_t c = 0; c < C; c++) out.push_back(table[id * C + c]);
  return out;
}

// Stored a is [M, K] or, with ta, [K, M]; stored b is [K, N] or, with tb, [N, K].
Vec matmul_ref(const Vec& a, const Vec& b, int64_t batch, int64_t M, int64_t N, int64_t K, bool ta, bool tb,
               int64_t a_stride, int64_t b_stride) {
  Vec out(batch * M * N);
  for (int64_t z = 0; z < batch; z++)
    for (int64_t m = 0; m < M; m++)
      for (int64_t n = 0; n < N; n++) {
        double s = 0;
        for (int64_t k = 0; k < K; k++) {
          const double av = a[z * a_stride + (ta ? k * M + m : m * K + k)];
          const double bv = b[z * b_stride + (tb ? n * K + k : k * N + n)];
          s += av * bv;
        }
        out[(z * M + m) * N + n] = s;
      }
  return out;
}

Vec layernorm_ref(const Vec& x, const Vec& w, const Vec& b, int64_t rows, int64_t C, double eps) {
  Vec y(rows * C);
  for (int64_t r = 0; r < rows; r++) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < C; i++) mean += x[r * C + i];
    mean /= C;
    for (int64_t i = 0; i < C; i++) var += (x[r * C + i] - mean) * (x[r * C + i] - mean);
    var /= C;
    const double rstd = 1 / std::sqrt(var + eps);
    for (int64_t i = 0; i < C; i++) y[r * C + i] = (x[r * C + i] - mean) * rstd * w[i] + b[i];
  }
  return y;
}

Vec gelu_ref(const Vec& x) {
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); i++)
    y[i] = 0.5 * x[i] * (1 + std::tanh(std::sqrt(2 / M_PI) * (x[i] + 0.044715 * x[i] * x[i] * x[i])));
  return y;
}

struct AttentionOut {
  Vec y, lse;
};
// k and v hold BH / group slabs; query slab bh reads slab bh / group.
AttentionOut attention_ref(const Vec& q, const Vec& k, const Vec& v, int64_t BH, int64_t T, int64_t D,
                           int64_t group = 1) {
  AttentionOut out{Vec(BH * T * D, 0.0), Vec(BH * T)};
  for (int64_t bh = 0; bh < BH; bh++)
    for (int64_t i = 0; i < T; i++) {
      const int64_t kv = bh / group;
      Vec s(i + 1);
      double mx = -INFINITY;
      for (int64_t j = 0; j <= i; j++) {
        double d = 0;
        for (int64_t e = 0; e < D; e++) d += q[(bh * T + i) * D + e] * k[(kv * T + j) * D + e];
        s[j] = d / std::sqrt(double(D));
        mx = std::max(mx, s[j]);
      }
      double sum = 0;
      for (int64_t j = 0; j <= i; j++) sum += std::exp(s[j] - mx);
      const double lse = mx + std::log(sum);
      out.lse[bh * T + i] = lse;
      for (int64_t j = 0; j <= i; j++)
        for (int64_t e = 0; e < D; e++)
          out.y[(bh * T + i) * D + e] += std::exp(s[j] - lse) * v[(kv * T + j) * D + e];
    }
  return out;
}

// Attention with Tk keys (cross-attention when Tk != T), causal (keys j <= i) or not, and an optional
// additive mask [T, Tk] (-inf hides a key); every row must see a key.
AttentionOut attention_variant_ref(const Vec& q, const Vec& k, const Vec& v, int64_t BH, int64_t T, int64_t Tk, int64_t D,
                                   int64_t group, bool causal, const Vec* mask) {
  AttentionOut out{Vec(BH * T * D, 0.0), Vec(BH * T)};
  for (int64_t bh = 0; bh < BH; bh++)
    for (int64_t i = 0; i < T; i++) {
      const int64_t kv = bh / group;
      Vec s(Tk, -INFINITY);
      double mx = -INFINITY;
      for (int64_t j = 0; j < Tk && !(causal && j > i); j++) {
        double d = 0;
        for (int64_t e = 0; e < D; e++) d += q[(bh * T + i) * D + e] * k[(kv * Tk + j) * D + e];
        s[j] = d / std::sqrt(double(D)) + (mask ? (*mask)[i * Tk + j] : 0.0);
        mx = std::max(mx, s[j]);
      }
      double sum = 0;
      for (int64_t j = 0; j < Tk; j++) sum += std::exp(s[j] - mx);
      const double lse = mx + std::log(sum);
      out.lse[bh * T + i] = lse;
      for (int64_t j = 0; j < Tk; j++)
        for (int64_t e = 0; e < D; e++) out.y[(bh * T + i) * D + e] += std::exp(s[j] - lse) * v[(kv * Tk + j) * D + e];
    }
  return out;
}

// Rows of D at position r % T; pair (i, i + D/2) turned by t base^(-2i/D), backwards when inverse.
Vec rope_ref(const Vec& x, int64_t T, int64_t D, double base, bool inverse) {
  Vec y(x.size());
  const int64_t half = D / 2;
  for (size_t r = 0; r < x.size() / D; r++)
    for (int64_t i = 0; i < half; i++) {
      const double angle = double(r % T) * std::pow(base, -2.0 * i / D) * (inverse ? -1 : 1);
      const double a = x[r * D + i], b = x[r * D + i + half];
      y[r * D + i] = a * std::cos(angle) - b * std::sin(angle);
      y[r * D + i + half] = b * std::cos(angle) + a * std::sin(angle);
    }
  return y;
}

Vec silu_ref(const Vec& x) {
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); i++) y[i] = x[i] / (1 + std::exp(-x[i]));
  return y;
}

double cross_entropy_ref(const Vec& logits, const Ints& targets, int64_t N, int64_t V) {
  double total = 0;
  for (int64_t n = 0; n < N; n++) {
    double mx = -INFINITY, sum = 0;
    for (int64_t v = 0; v < V; v++) mx = std::max(mx, logits[n * V + v]);
    for (int64_t v = 0; v < V; v++) sum += std::exp(logits[n * V + v] - mx);
    total += mx + std::log(sum) - logits[n * V + targets[n]];
  }
  return total / N;
}

// Loss and per-row log-sum-exp of logits = x [N, C] W^T, W stored [V, C] (w_vc) or [C, V].
struct HeadOut {
  double loss;
  Vec lse;
};
HeadOut linear_cross_entropy_ref(const Vec& x, const Vec& w, const Ints& targets, int64_t N, int64_t C, int64_t V,
                                 bool w_vc) {
  Vec logits(N * V);
  for (int64_t n = 0; n < N; n++)
    for (int64_t v = 0; v < V; v++) {
      double s = 0;
      for (int64_t k = 0; k < C; k++) s += x[n * C + k] * w[w_vc ? v * C + k : k * V + v];
      logits[n * V + v] = s;
    }
  HeadOut out{cross_entropy_ref(logits, targets, N, V), Vec(N)};
  for (int64_t n = 0; n < N; n++) {
    double mx = -INFINITY, sum = 0;
    for (int64_t v = 0; v < V; v++) mx = std::max(mx, logits[n * V + v]);
    for (int64_t v = 0; v < V; v++) sum += std::exp(logits[n * V + v] - mx);
    out.lse[n] = mx + std::log(sum);
  }
  return out;
}

Vec permute_ref(const Vec& in, const std::vector<int64_t>& shape, const std::vector<int>& perm) {
  const size_t rank = shape.size();
  std::vector<int64_t> out_shape(rank);
  for (size_t d = 0; d < rank; d++) out_shape[d] = shape[perm[d]];
  Vec out(in.size());
  for (size_t flat = 0; flat < in.size(); flat++) {
    std::vector<int64_t> i(rank), j(rank);
    size_t rest = flat;
    for (size_t d = rank; d-- > 0;) i[d] = rest % out_shape[d], rest /= out_shape[d];
    for (size_t d = 0; d < rank; d++) j[perm[d]] = i[d];
    size_t src = 0;
    for (size_t d = 0; d < rank; d++) src = src * shape[d] + j[d];
    out[flat] = in[src];
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Kernel cases

void check_fill_copy_iota() {
  const int64_t n = 1031;
  check_kernel("fill", [&](int t) {
    Arena a(t);
    float* out = a.output(n);
    fill(a.ctx, out, n, 2.5f);
    Floats r;
    append(r, out, n);
    return finish(a, r);
  }, Vec(n, 2.5), kExact);

  const Floats x = random_floats(n);
  check_kernel("copy", [&](int t) {
    Arena a(t);
    const float* in = a.input(x);
    float* out = a.output(n);
    copy(a.ctx, out, in, n);
    Floats r;
    append(r, out, n);
    return finish(a, r);
  }, widen(x), kExact);

  Vec want(n);
  for (int64_t i = 0; i < n; i++) want[i] = double(i);
  check_kernel("iota", [&](int t) {
    Arena a(t);
    int32_t* out = a.output_i32(n);
    iota(a.ctx, out, n);
    Floats r;
    append(r, out, n);
    return finish(a, r);
  }, want, kExact);

  check_kernel("scale", [&](int t) {
    Arena a(t);
    const float* in = a.input(x);
    float* out = a.output(n);
    scale(a.ctx, out, in, -0.75f, n);
    Floats r;
    append(r, out, n);
    return finish(a, r);
  }, [&] {
    Vec w(n);
    for (int64_t i = 0; i < n; i++) w[i] = float(x[i] * -0.75);  // the exact product, rounded once
    return w;
  }(), kExact);
}

void check_broadcast() {
  const int64_t n = 13 * 9;
  const Floats a_vals = random_floats(n);
  for (int64_t nb : {n, int64_t(1), int64_t(13)}) {
    const Floats b_vals = random_floats(nb);
    for (bool is_add : {true, false}) {
      Vec want(n);
      for (int64_t i = 0; i < n; i++)
        want[i] = float(is_add ? double(a_vals[i]) + b_vals[i % nb] : double(a_vals[i]) * b_vals[i % nb]);
      const std::string name = std::string(is_add ? "add" : "mul") + " (n " + std::to_string(n) + ", nb " +
                               std::to_string(nb) + ")";
      check_kernel(name, [&](int t) {
        Arena a(t);
        const float* ap = a.input(a_vals);
        const float* bp = a.input(b_vals);
        float* out = a.output(n);
        (is_add ? add : mul)(a.ctx, out, ap, bp, n, nb);
        Floats r;
        append(r, out, n);
        return finish(a, r);
      }, want, kExact);
    }
  }
}

void check_sum_rows() {
  const int64_t rows = 37, cols = 130;  // 130 columns: two full column blocks and a ragged one
  const Floats x = random_floats(rows * cols);
  Vec want(cols, 0.0);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) want[c] += x[r * cols + c];
  check_kernel("sum_rows", [&](int t) {
    Arena a(t);
    const float* in = a.input(x);
    float* out = a.output(cols);
    sum_rows(a.ctx, out, in, rows, cols);
    Floats r;
    append(r, out, cols);
    return finish(a, r);
  }, want, kForward);
}

void check_embedding() {
  const int64_t N = 11, C = 5, V = 7;
  const Ints idx = {3, 0, 6, 3, 3, 1, 6, 0, 2, 3, 5};  // repeats; id 4 never used
  const Floats table = random_floats(V * C);
  check_kernel("embedding_fwd", [&](int t) {
    Arena a(t);
    const float* tp = a.input(table);
    const int32_t* ip = a.input(idx);
    float* out = a.output(N * C);
    embedding_fwd(a.ctx, out, tp, ip, N, C, V);
    Floats r;
    append(r, out, N * C);
    return finish(a, r);
  }, embedding_ref(widen(table), idx, C), kExact);

  const Floats dy = random_floats(N * C);
  const Vec grad = fd_grad(widen(table), [&](const Vec& tb) { return project(embedding_ref(tb, idx, C), widen(dy)); });
  check_kernel("embedding_bwd", [&](int t) {
    Arena a(t);
    const int32_t* ip = a.input(idx);
    const float* dyp = a.input(dy);
    float* dtable = a.output(V * C);
    embedding_bwd(a.ctx, dtable, ip, dyp, N, C, V);
    Floats r;
    append(r, dtable, V * C);
    return finish(a, r);
  }, grad, kBackward);

  // acc + the embedding gradient, into a new output and in place; and bitwise what embedding_bwd then
  // add give, the computation it replaces.
  const Floats acc = random_floats(V * C);
  Vec want(V * C);
  for (int64_t i = 0; i < V * C; i++) want[i] = double(acc[i]) + grad[i];
  for (bool in_place : {false, true}) {
    check_kernel(std::string("embedding_bwd_acc") + (in_place ? " in place" : ""), [&](int t) {
      Arena a(t);
      const int32_t* ip = a.input(idx);
      const float* dyp = a.input(dy);
      const float* accp = in_place ? nullptr : a.input(acc);
      float* out = a.output(V * C);
      if (in_place) std::memcpy(out, acc.data(), acc.size() * 4);
      a.workspace((V + 1 + N) * 4 + int64_t(t) * C * 4);
      embedding_bwd_acc(a.ctx, out, in_place ? out : accp, ip, dyp, N, C, V);
      Floats r;
      append(r, out, V * C);
      return finish(a, r);
    }, want, kBackward);
  }
  Arena a(2);
  float* dtable = a.output(V * C);
  embedding_bwd(a.ctx, dtable, a.input(idx), a.input(dy), N, C, V);
  float* summed = a.output(V * C);
  add(a.ctx, summed, a.input(acc), dtable, V * C, V * C);
  float* fused = a.output(V * C);
  a.workspace((V + 1 + N) * 4 + 2 * C * 4);
  embedding_bwd_acc(a.ctx, fused, a.input(acc), a.input(idx), a.input(dy), N, C, V);
  report(std::memcmp(summed, fused, size_t(V * C) * 4) == 0, "embedding_bwd_acc: bitwise embedding_bwd then add");
}

// A bad token id must raise stow::Error whose message names the id, its position and the vocabulary.
void check_bad_ids() {
  const int64_t C = 3, V = 7;
  const Floats table = random_floats(V * C), dy = random_floats(5 * C), logits = random_floats(5 * V);
  auto expect_error = [](const std::string& name, const std::function<void()>& call,
                         std::initializer_list<const char*> phrases) {
    try {
      call();
      report(false, name, "no error raised");
    } catch (const stow::Error& e) {
      std::string missing;
      for (const char* p : phrases)
        if (std::string(e.what()).find(p) == std::string::npos) missing += std::string(" '") + p + "'";
      report(missing.empty(), name, missing.empty() ? e.what() : std::string(e.what()) + " lacks" + missing);
    }
  };
  expect_error("embedding_fwd rejects an id past the vocabulary", [&] {
    Arena a(2);
    const Ints idx = {1, 2, 0, 7, 3};
    embedding_fwd(a.ctx, a.output(5 * C), a.input(table), a.input(idx), 5, C, V);
  }, {"token id 7", "position 3", "vocabulary of 7"});
  expect_error("embedding_bwd rejects a negative id", [&] {
    Arena a(2);
    const Ints idx = {1, -1, 0, 2, 3};
    embedding_bwd(a.ctx, a.output(V * C), a.input(idx), a.input(dy), 5, C, V);
  }, {"token id -1", "position 1", "vocabulary of 7"});
  expect_error("cross_entropy_fwd rejects a target past the vocabulary", [&] {
    Arena a(2);
    const Ints targets = {0, 1, 2, 3, 9};
    cross_entropy_fwd(a.ctx, a.output(1), a.input(logits), a.input(targets), 5, V);
  }, {"target 9", "row 4", "vocabulary of 7"});
  expect_error("cross_entropy_bwd rejects a negative target", [&] {
    Arena a(2);
    const Ints targets = {0, -2, 2, 3, 4};
    const Floats dloss = {1};
    cross_entropy_bwd(a.ctx, a.output(5 * V), a.input(logits), a.input(targets), a.input(dloss), 5, V);
  }, {"target -2", "row 1"});
  expect_error("linear_cross_entropy_fwd rejects a target past the vocabulary", [&] {
    Arena a(2);
    const Ints targets = {0, 1, 7, 3, 4};
    a.workspace((5 * V + 2 * 5) * 4);
    linear_cross_entropy_fwd(a.ctx, a.output(1), a.output(5), a.input(dy), a.input(table), a.input(targets), 5, C, V,
                             true, 5, V);
  }, {"target 7", "row 2", "vocabulary of 7"});
}

void check_matmul() {
  const int64_t batch = 2, M = 5, N = 6, K = 7;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (bool shared_b : {false, true}) {  // b_stride 0: one b for every batch, as a linear layer
        const int64_t a_stride = M * K, b_stride = shared_b ? 0 : K * N;
        const Floats av = random_floats(batch * M * K), bv = random_floats((shared_b ? 1 : batch) * K * N);
        const std::string name = std::string("matmul (ta ") + (ta ? "1" : "0") + ", tb " + (tb ? "1" : "0") +
                                 (shared_b ? ", shared b)" : ")");
        check_kernel(name, [&](int t) {
          Arena a(t);
          const float* ap = a.input(av);
          const float* bp = a.input(bv);
          float* out = a.output(batch * M * N);
          matmul(a.ctx, out, ap, bp, batch, M, N, K, ta, tb, a_stride, b_stride);
          Floats r;
          append(r, out, batch * M * N);
          return finish(a, r);
        }, matmul_ref(widen(av), widen(bv), batch, M, N, K, ta, tb, a_stride, b_stride), kForward);
      }

  // Gradients of out = A @ B through matmul itself: dA = dout @ B^T, dB = A^T @ dout.
  const Floats av = random_floats(batch * M * K), bv = random_floats(batch * K * N), dout = random_floats(batch * M * N);
  auto loss_a = [&](const Vec& x) {
    return project(matmul_ref(x, widen(bv), batch, M, N, K, false, false, M * K, K * N), widen(dout));
  };
  auto loss_b = [&](const Vec& x) {
    return project(matmul_ref(widen(av), x, batch, M, N, K, false, false, M * K, K * N), widen(dout));
  };
  check_kernel("matmul gradient dA = dout @ B^T", [&](int t) {
    Arena a(t);
    const float* dp = a.input(dout);
    const float* bp = a.input(bv);
    float* da = a.output(batch * M * K);
    matmul(a.ctx, da, dp, bp, batch, M, K, N, false, true, M * N, K * N);
    Floats r;
    append(r, da, batch * M * K);
    return finish(a, r);
  }, fd_grad(widen(av), loss_a), kBackward);
  check_kernel("matmul gradient dB = A^T @ dout", [&](int t) {
    Arena a(t);
    const float* ap = a.input(av);
    const float* dp = a.input(dout);
    float* db = a.output(batch * K * N);
    matmul(a.ctx, db, ap, dp, batch, K, N, M, true, false, M * K, M * N);
    Floats r;
    append(r, db, batch * K * N);
    return finish(a, r);
  }, fd_grad(widen(bv), loss_b), kBackward);

  // Large enough for OpenBLAS to split the work between threads.
  const int64_t BM = 384, BN = 768, BK = 512;
  const Floats big_a = random_floats(BM * BK), big_b = random_floats(BK * BN);
  check_kernel("matmul (384 x 768 x 512, ta 1, tb 1)", [&](int t) {
    Arena a(t);
    const float* ap = a.input(big_a);
    const float* bp = a.input(big_b);
    float* out = a.output(BM * BN);
    matmul(a.ctx, out, ap, bp, 1, BM, BN, BK, true, true, 0, 0);
    Floats r;
    append(r, out, BM * BN);
    return finish(a, r);
  }, matmul_ref(widen(big_a), widen(big_b), 1, BM, BN, BK, true, true, 0, 0), Tol{1e-4, 1e-4});
}

void check_layernorm() {
  const int64_t rows = 9, C = 100;  // 100 columns: ragged against both the lanes and the column blocks
  const float eps = 1e-5f;
  const Floats x = random_floats(rows * C, 2, 4);  // a mean far from 0 exercises the two-pass variance
  const Floats w = random_floats(C, 0.5, 1.5), b = random_floats(C), dy = random_floats(rows * C);
  check_kernel("layernorm_fwd", [&](int t) {
    Arena a(t);
    const float* xp = a.input(x);
    const float* wp = a.input(w);
    const float* bp = a.input(b);
    float* y = a.output(rows * C);
    layernorm_fwd(a.ctx, y, xp, wp, bp, rows, C, eps);
    Floats r;
    append(r, y, rows * C);
    return finish(a, r);
  }, layernorm_ref(widen(x), widen(w), widen(b), rows, C, eps), kForward);

  const Vec xd = widen(x), wd = widen(w), bd = widen(b), dyd = widen(dy);
  const Vec want = concat({
      fd_grad(xd, [&](const Vec& v) { return project(layernorm_ref(v, wd, bd, rows, C, eps), dyd); }),
      fd_grad(wd, [&](const Vec& v) { return project(layernorm_ref(xd, v, bd, rows, C, eps), dyd); }),
      fd_grad(bd, [&](const Vec& v) { return project(layernorm_ref(xd, wd, v, rows, C, eps), dyd); }),
  });
  check_kernel("layernorm_bwd (dx, dw, db)", [&](int t) {
    Arena a(t);
    const float* xp = a.input(x);
    const float* wp = a.input(w);
    const float* dyp = a.input(dy);
    float* dx = a.output(rows * C);
    float* dw = a.output(C);
    float* db = a.output(C);
    a.workspace(rows * 2 * 4);
    layernorm_bwd(a.ctx, dx, dw, db, xp, wp, dyp, rows, C, eps);
    Floats r;
    append(r, dx, rows * C);
    append(r, dw, C);
    append(r, db, C);
    return finish(a, r);
  }, want, kBackward);
}

// Dropout applies kernel_math.h's keep bit (checked against the interpreter's independent copy by
// test/system/op_kernels.test.ts): here the loop around it, its threads, and the fraction it drops.
void check_dropout() {
  const int64_t n = 100000;
  const float p = 0.25f;
  const Floats x = random_floats(n, -2, 2);
  Vec want(n);
  int64_t dropped = 0;
  for (int64_t i = 0; i < n; i++) {
    const bool keep = math::dropout_keep(7u, 3, i, p);
    want[i] = keep ? double(x[i]) / (1 - double(p)) : 0.0;
    dropped += keep ? 0 : 1;
  }
  check_kernel("dropout", [&](int t) {
    Arena a(t);
    const float* xp = a.input(x);
    float* y = a.output(n);
    dropout(a.ctx, y, xp, n, p, 7u, 3);
    Floats r;
    append(r, y, n);
    return finish(a, r);
  }, want, kForward);
  const double sigma = std::sqrt(n * p * (1 - p));
  report(std::fabs(double(dropped) - n * p) < 4 * sigma, "dropout: drops a fraction p of the elements, within 4 sigma",
         std::to_string(dropped) + " of " + std::to_string(n) + " dropped");
}

void check_gelu() {
  const int64_t n = 257;
  Floats x = random_floats(n, -4, 4);
  const Floats dy = random_floats(n);
  x[0] = -30, x[1] = -10, x[2] = 10, x[3] = 30, x[4] = 0;  // tanh saturated both ways, and 0
  check_kernel("gelu_fwd", [&](int t) {
    Arena a(t);
    const float* xp = a.input(x);
    float* y = a.output(n);
    gelu_fwd(a.ctx, y, xp, n);
    Floats r;
    append(r, y, n);
    return finish(a, r);
  }, gelu_ref(widen(x)), kForward);
  check_kernel("gelu_bwd", [&](int t) {
    Arena a(t);
    const float* xp = a.input(x);
    const float* dyp = a.input(dy);
    float* dx = a.output(n);
    gelu_bwd(a.ctx, dx, xp, dyp, n);
    Floats r;
    append(r, dx, n);
    return finish(a, r);
  }, fd_grad(widen(x), [&](const Vec& v) { return project(gelu_ref(v), widen(dy)); }), kBackward);
}

// The exp that the softmax, cross-entropy and GELU kernels share, on every 997th float of
// [-87.3, 88.3] (where exp is a normal float), and at the edges.
void check_vexp() {
  double worst = 0;
  float worst_x = 0;
  int64_t count = 0;
  for (float sign : {1.0f, -1.0f}) {
    const float limit = sign > 0 ? 88.3f : 87.3f;
    uint32_t end;
    std::memcpy(&end, &limit, 4);
    for (uint32_t bits = 0; bits <= end; bits += 997, count++) {
      float x;
      std::memcpy(&x, &bits, 4);
      x *= sign;
      const double want = std::exp(double(x)), err = std::fabs(double(detail::vexp(x)) - want) / want;
      if (!(err <= worst)) worst = err, worst_x = x;
    }
  }
  char buf[160];
  std::snprintf(buf, sizeof buf, "%lld points, largest relative error %.3g at %.9g", (long long)count, worst,
                double(worst_x));
  report(worst <= 1.5e-7, "vexp is within 1.5e-7 relative of exp on [-87.3, 88.3]", buf);
  const bool edges = detail::vexp(0.0f) == 1.0f && detail::vexp(-INFINITY) == 0.0f &&
                     detail::vexp(-100.0f) == 0.0f && std::isnan(detail::vexp(NAN));
  report(edges, "vexp(0) = 1, vexp(-inf) = vexp(-100) = 0, vexp(NaN) is NaN");
}

void check_attention() {
  const int64_t BH = 3, T = 7, D = 20;  // D = 20: ragged against the 16 accumulation lanes
  const Floats q = random_floats(BH * T * D, -2, 2), k = random_floats(BH * T * D, -2, 2),
               v = random_floats(BH * T * D), dy = random_floats(BH * T * D);
  const AttentionOut ref = attention_ref(widen(q), widen(k), widen(v), BH, T, D);
  check_kernel("attention_fwd (y, lse)", [&](int t) {
    Arena a(t);
    const float* qp = a.input(q);
    const float* kp = a.input(k);
    const float* vp = a.input(v);
    float* y = a.output(BH * T * D);
    float* lse = a.output(BH * T);
    a.workspace(T * T * 4);
    attention_fwd(a.ctx, y, lse, qp, kp, vp, BH, T, D);
    Floats r;
    append(r, y, BH * T * D);
    append(r, lse, BH * T);
    return finish(a, r);
  }, concat({ref.y, ref.lse}), kForward);

  // y and lse fed to the backward come from the double reference, not from attention_fwd.
  const Vec qd = widen(q), kd = widen(k), vd = widen(v), dyd = widen(dy);
  const Vec want = concat({
      fd_grad(qd, [&](const Vec& x) { return project(attention_ref(x, kd, vd, BH, T, D).y, dyd); }),
      fd_grad(kd, [&](const Vec& x) { return project(attention_ref(qd, x, vd, BH, T, D).y, dyd); }),
      fd_grad(vd, [&](const Vec& x) { return project(attention_ref(qd, kd, x, BH, T, D).y, dyd); }),
  });
  const Floats y_ref = narrow(ref.y), lse_ref = narrow(ref.lse);
  check_kernel("attention_bwd (dq, dk, dv)", [&](int t) {
    Arena a(t);
    const float* qp = a.input(q);
    const float* kp = a.input(k);
    const float* vp = a.input(v);
    const float* yp = a.input(y_ref);
    const float* lp = a.input(lse_ref);
    const float* dyp = a.input(dy);
    float* dq = a.output(BH * T * D);
    float* dk = a.output(BH * T * D);
    float* dv = a.output(BH * T * D);
    a.workspace(2 * T * T * 4);
    attention_bwd(a.ctx, dq, dk, dv, qp, kp, vp, yp, lp, dyp, BH, T, D);
    Floats r;
    append(r, dq, BH * T * D);
    append(r, dk, BH * T * D);
    append(r, dv, BH * T * D);
    return finish(a, r);
  }, want, kBackward);
}

// Grouped-query and multi-query attention: k and v with fewer heads than q. The gradient of a KV slab
// sums over its group's query slabs.
void check_grouped_attention() {
  const int64_t B = 2, H = 4, T = 6, D = 20, BH = B * H;
  for (int64_t kv_heads : {int64_t(2), int64_t(1)}) {
    const int64_t group = H / kv_heads, BKV = B * kv_heads;
    const Floats q = random_floats(BH * T * D, -2, 2), k = random_floats(BKV * T * D, -2, 2),
                 v = random_floats(BKV * T * D), dy = random_floats(BH * T * D);
    const AttentionOut ref = attention_ref(widen(q), widen(k), widen(v), BH, T, D, group);
    const std::string name = "attention (" + std::to_string(H) + " query heads, " + std::to_string(kv_heads) +
                             " KV " + (kv_heads == 1 ? "head)" : "heads)");
    check_kernel(name + " fwd", [&](int t) {
      Arena a(t);
      const float* qp = a.input(q);
      const float* kp = a.input(k);
      const float* vp = a.input(v);
      float* y = a.output(BH * T * D);
      float* lse = a.output(BH * T);
      a.workspace(T * T * 4);
      attention_fwd(a.ctx, y, lse, qp, kp, vp, BH, T, D, group);
      Floats r;
      append(r, y, BH * T * D);
      append(r, lse, BH * T);
      return finish(a, r);
    }, concat({ref.y, ref.lse}), kForward);

    const Vec qd = widen(q), kd = widen(k), vd = widen(v), dyd = widen(dy);
    const Vec want = concat({
        fd_grad(qd, [&](const Vec& x) { return project(attention_ref(x, kd, vd, BH, T, D, group).y, dyd); }),
        fd_grad(kd, [&](const Vec& x) { return project(attention_ref(qd, x, vd, BH, T, D, group).y, dyd); }),
        fd_grad(vd, [&](const Vec& x) { return project(attention_ref(qd, kd, x, BH, T, D, group).y, dyd); }),
    });
    const Floats y_ref = narrow(ref.y), lse_ref = narrow(ref.lse);
    check_kernel(name + " bwd (dq, dk, dv)", [&](int t) {
      Arena a(t);
      const float* qp = a.input(q);
      const float* kp = a.input(k);
      const float* vp = a.input(v);
      const float* yp = a.input(y_ref);
      const float* lp = a.input(lse_ref);
      const float* dyp = a.input(dy);
      float* dq = a.output(BH * T * D);
      float* dk = a.output(BKV * T * D);
      float* dv = a.output(BKV * T * D);
      a.workspace(2 * T * T * 4);
      attention_bwd(a.ctx, dq, dk, dv, qp, kp, vp, yp, lp, dyp, BH, T, D, group);
      Floats r;
      append(r, dq, BH * T * D);
      append(r, dk, BKV * T * D);
      append(r, dv, BKV * T * D);
      return finish(a, r);
    }, want, kBackward);
  }
}

// Attention that is not causal, masked, or cross (Tk != T): the kernels' trailing arguments. The mask
// hides keys with (i + j) % 4 == 1, never a whole row.
void check_attention_variants() {
  struct Variant {
    int64_t BH, T, Tk, D, group;
    bool causal, masked;
  };
  for (const Variant& s : {Variant{2, 5, 5, 20, 1, false, false}, Variant{4, 3, 9, 20, 2, false, true},
                           Variant{2, 7, 4, 6, 2, true, true}}) {
    const int64_t n = s.BH * s.T * s.D, kvn = s.BH / s.group * s.Tk * s.D;
    const Floats q = random_floats(n, -2, 2), k = random_floats(kvn, -2, 2), v = random_floats(kvn), dy = random_floats(n);
    Floats mask = random_floats(s.T * s.Tk);
    for (int64_t e = 0; e < s.T * s.Tk; e++)
      if ((e / s.Tk + e % s.Tk) % 4 == 1) mask[e] = -INFINITY;
    const Vec maskd = widen(mask);
    const Vec* m = s.masked ? &maskd : nullptr;
    auto ref_of = [&](const Vec& qx, const Vec& kx, const Vec& vx) {
      return attention_variant_ref(qx, kx, vx, s.BH, s.T, s.Tk, s.D, s.group, s.causal, m);
    };
    const AttentionOut ref = ref_of(widen(q), widen(k), widen(v));
    const std::string name = "attention (T=" + std::to_string(s.T) + ", Tk=" + std::to_string(s.Tk) +
                             (s.causal ? ", causal" : ", not causal") + (s.masked ? ", masked)" : ")");
    check_kernel(name + " fwd", [&](int t) {
      Arena a(t);
      const float* qp = a.input(q);
      const float* kp = a.input(k);
      const float* vp = a.input(v);
      const float* mp = s.masked ? a.input(mask) : nullptr;
      float* y = a.output(n);
      float* lse = a.output(s.BH * s.T);
      a.workspace(s.T * s.Tk * 4);
      attention_fwd(a.ctx, y, lse, qp, kp, vp, s.BH, s.T, s.D, s.group, s.Tk, s.causal, mp);
      Floats r;
      append(r, y, n);
      append(r, lse, s.BH * s.T);
      return finish(a, r);
    }, concat({ref.y, ref.lse}), kForward);

    const Vec qd = widen(q), kd = widen(k), vd = widen(v), dyd = widen(dy);
    const Vec want = concat({
        fd_grad(qd, [&](const Vec& x) { return project(ref_of(x, kd, vd).y, dyd); }),
        fd_grad(kd, [&](const Vec& x) { return project(ref_of(qd, x, vd).y, dyd); }),
        fd_grad(vd, [&](const Vec& x) { return project(ref_of(qd, kd, x).y, dyd); }),
    });
    const Floats y_ref = narrow(ref.y), lse_ref = narrow(ref.lse);
    check_kernel(name + " bwd (dq, dk, dv)", [&](int t) {
      Arena a(t);
      const float* qp = a.input(q);
      const float* kp = a.input(k);
      const float* vp = a.input(v);
      const float* yp = a.input(y_ref);
      const float* lp = a.input(lse_ref);
      const float* dyp = a.input(dy);
      const float* mp = s.masked ? a.input(mask) : nullptr;
      float* dq = a.output(n);
      float* dk = a.output(kvn);
      float* dv = a.output(kvn);
      a.workspace(2 * s.T * s.Tk * 4);
      attention_bwd(a.ctx, dq, dk, dv, qp, kp, vp, yp, lp, dyp, s.BH, s.T, s.D, s.group, s.Tk, s.causal, mp);
      Floats r;
      append(r, dq, n);
      append(r, dk, kvn);
      append(r, dv, kvn);
      return finish(a, r);
    }, want, kBackward);
  }
}

void check_layernorm_without_bias() {
  const int64_t rows = 7, C = 100;
  const float eps = 1e-5f;
  const Floats x = random_floats(rows * C, 2, 4), w = random_floats(C, 0.5, 1.5), dy = random_floats(rows * C);
  const Vec xd = widen(x), wd = widen(w), dyd = widen(dy), zeros(C, 0.0);
  check_kernel("layernorm_fwd without bias", [&](int t) {
    Arena a(t);
    const float* xp = a.input(x);
    const float* wp = a.input(w);
    float* y = a.output(rows * C);
    layernorm_fwd(a.ctx, y, xp, wp, nullptr, rows, C, eps);
    Floats r;
    append(r, y, rows * C);
    return finish(a, r);
  }, layernorm_ref(xd, wd, zeros, rows, C, eps), kForward);
  const Vec want = concat({
      fd_grad(xd, [&](const Vec& v) { return project(layernorm_ref(v, wd, zeros, rows, C, eps), dyd); }),
      fd_grad(wd, [&](const Vec& v) { return project(layernorm_ref(xd, v, zeros, rows, C, eps), dyd); }),
  });
  check_kernel("layernorm_bwd without bias (dx, dw)", [&](int t) {
    Arena a(t);
    const float* xp = a.input(x);
    const float* wp = a.input(w);
    const float* dyp = a.input(dy);
    float* dx = a.output(rows * C);
    float* dw = a.output(C);
    a.workspace(rows * 2 * 4);
    layernorm_bwd(a.ctx, dx, dw, nullptr, xp, wp, dyp, rows, C, eps);
    Floats r;
    append(r, dx, rows * C);
    append(r, dw, C);
    return finish(a, r);
  }, want, kBackward);
}

// The forward against the double rotation; the inverse (the gradient) against finite differences of
// the double forward; and the inverse run in place (y = x), as the plan may place it.
void check_rope() {
  const int64_t rows = 3 * 4 * 9, T = 9, D = 36;  // D/2 = 18: ragged against the vector width
  const float base = 10000.0f;
  const Floats x = random_floats(rows * D), dy = random_floats(rows * D);
  check_kernel("rope", [&](int t) {
    Arena a(t);
    const float* xp = a.input(x);
    float* y = a.output(rows * D);
    a.workspace(T * D * 4);
    rope(a.ctx, y, xp, rows, T, D, base, false);
    Floats r;
    append(r, y, rows * D);
    return finish(a, r);
  }, rope_ref(widen(x), T, D, base, false), kForward);
  const Vec grad = fd_grad(widen(x), [&](const Vec& v) { return project(rope_ref(v, T, D, base, false), widen(dy)); });
  check_kernel("rope inverse = gradient, in place", [&](int t) {
    Arena a(t);
    float* g = a.input(dy);
    a.workspace(T * D * 4);
    rope(a.ctx, g, g, rows, T, D, base, true);
    Floats r;
    append(r, g, rows * D);
    return finish(a, r);
  }, grad, kBackward);
}

void check_silu() {
  const int64_t n = 257;
  Floats x = random_floats(n, -6, 6);
  const Floats dy = random_floats(n);
  x[0] = -100, x[1] = -20, x[2] = 20, x[3] = 100, x[4] = 0;  // the sigmoid saturated both ways, and 0
  check_kernel("silu_fwd", [&](int t) {
    Arena a(t);
    const float* xp = a.input(x);
    float* y = a.output(n);
    silu_fwd(a.ctx, y, xp, n);
    Floats r;
    append(r, y, n);
    return finish(a, r);
  }, silu_ref(widen(x)), kForward);
  check_kernel("silu_bwd", [&](int t) {
    Arena a(t);
    const float* xp = a.input(x);
    const float* dyp = a.input(dy);
    float* dx = a.output(n);
    silu_bwd(a.ctx, dx, xp, dyp, n);
    Floats r;
    append(r, dx, n);
    return finish(a, r);
  }, fd_grad(widen(x), [&](const Vec& v) { return project(silu_ref(v), widen(dy)); }), kBackward);
}

void check_cross_entropy() {
  const int64_t N = 6, V = 37;
  Floats logits = random_floats(N * V, -3, 3);
  for (int64_t v = 0; v < V; v++) logits[2 * V + v] += 90;  // exp(90) overflows float: needs the max shift
  const Ints targets = {5, 0, 36, 17, 17, 2};
  const Vec ld = widen(logits);
  check_kernel("cross_entropy_fwd", [&](int t) {
    Arena a(t);
    const float* lp = a.input(logits);
    const int32_t* tp = a.input(targets);
    float* loss = a.output(1);
    cross_entropy_fwd(a.ctx, loss, lp, tp, N, V);
    Floats r;
    append(r, loss, 1);
    return finish(a, r);
  }, {cross_entropy_ref(ld, targets, N, V)}, Tol{1e-6, 1e-5});

  const Floats dloss = {1.7f};
  check_kernel("cross_entropy_bwd", [&](int t) {
    Arena a(t);
    const float* lp = a.input(logits);
    const int32_t* tp = a.input(targets);
    const float* dl = a.input(dloss);
    float* dlogits = a.output(N * V);
    cross_entropy_bwd(a.ctx, dlogits, lp, tp, dl, N, V);
    Floats r;
    append(r, dlogits, N * V);
    return finish(a, r);
  }, fd_grad(ld, [&](const Vec& x) { return double(dloss[0]) * cross_entropy_ref(x, targets, N, V); }), kBackward);
}

// Tiles that split rows and vocabulary raggedly, and one tile covering everything, in both layouts of W.
void check_linear_cross_entropy() {
  const int64_t N = 11, C = 20, V = 37;
  const Ints targets = {5, 0, 36, 17, 17, 2, 30, 9, 36, 0, 21};
  const Floats dloss = {1.7f};
  struct Case {
    bool w_vc;
    int64_t rows, cols;
  };
  for (const Case& cs : {Case{true, 4, 10}, Case{false, 4, 10}, Case{true, N, V}, Case{false, 3, 36}}) {
    Floats x = random_floats(N * C, -1.5, 1.5);
    const Floats w = random_floats(V * C, -1.5, 1.5);
    for (int64_t k = 0; k < C; k++) x[3 * C + k] *= 20;  // logits beyond exp's float range: needs the max shift
    const Vec xd = widen(x), wd = widen(w);
    const HeadOut ref = linear_cross_entropy_ref(xd, wd, targets, N, C, V, cs.w_vc);
    const std::string name = std::string("linear_cross_entropy (W ") + (cs.w_vc ? "[V, C]" : "[C, V]") + ", tile " +
                             std::to_string(cs.rows) + " x " + std::to_string(cs.cols) + ")";
    check_kernel(name + " fwd (loss, lse)", [&](int t) {
      Arena a(t);
      const float* xp = a.input(x);
      const float* wp = a.input(w);
      const int32_t* tp = a.input(targets);
      float* loss = a.output(1);
      float* lse = a.output(N);
      a.workspace((cs.rows * cs.cols + 2 * cs.rows) * 4);
      linear_cross_entropy_fwd(a.ctx, loss, lse, xp, wp, tp, N, C, V, cs.w_vc, cs.rows, cs.cols);
      Floats r;
      append(r, loss, 1);
      append(r, lse, N);
      return finish(a, r);
    }, concat({{ref.loss}, ref.lse}), kForward);

    // lse fed to the backward comes from the double reference, not from the forward kernel.
    const auto loss_of = [&](const Vec& xv, const Vec& wv) {
      return double(dloss[0]) * linear_cross_entropy_ref(xv, wv, targets, N, C, V, cs.w_vc).loss;
    };
    const Vec want = concat({fd_grad(xd, [&](const Vec& v) { return loss_of(v, wd); }),
                             fd_grad(wd, [&](const Vec& v) { return loss_of(xd, v); })});
    const Floats lse_ref = narrow(ref.lse);
    check_kernel(name + " bwd (dx, dW)", [&](int t) {
      Arena a(t);
      const float* xp = a.input(x);
      const float* wp = a.input(w);
      const int32_t* tp = a.input(targets);
      const float* lp = a.input(lse_ref);
      const float* dl = a.input(dloss);
      float* dx = a.output(N * C);
      float* dw = a.output(V * C);
      a.workspace(cs.rows * cs.cols * 4);
      linear_cross_entropy_bwd(a.ctx, dx, dw, xp, wp, tp, lp, dl, N, C, V, cs.w_vc, cs.rows, cs.cols);
      Floats r;
      append(r, dx, N * C);
      append(r, dw, V * C);
      return finish(a, r);
    }, want, kBackward);
  }
}

// The fused LM head's results do not depend on its tile, bitwise (the planner shrinks tiles to fit a
// budget): loss, lse, dx and dW from the forward and backward with several tiles, whole units of the
// kernels' 256 columns and 128 rows or not, equal those with one tile over all the logits.
void check_linear_cross_entropy_tiles() {
  const int64_t N = 300, C = 24, V = 600;
  Ints targets(N);
  for (int64_t n = 0; n < N; n++) targets[n] = int32_t((n * 37 + 11) % V);
  const Floats dloss = {1.3f};
  for (const bool w_vc : {true, false}) {
    const Floats x = random_floats(N * C, -1.5, 1.5);
    const Floats w = random_floats(V * C, -1.5, 1.5);
    const auto run = [&](int64_t rows, int64_t cols) {
      Arena a(2);
      const float* xp = a.input(x);
      const float* wp = a.input(w);
      const int32_t* tp = a.input(targets);
      const float* dl = a.input(dloss);
      float* loss = a.output(1);
      float* lse = a.output(N);
      float* dx = a.output(N * C);
      float* dw = a.output(V * C);
      a.workspace((rows * cols + 2 * rows) * 4);
      linear_cross_entropy_fwd(a.ctx, loss, lse, xp, wp, tp, N, C, V, w_vc, rows, cols);
      linear_cross_entropy_bwd(a.ctx, dx, dw, xp, wp, tp, lse, dl, N, C, V, w_vc, rows, cols);
      Floats r;
      append(r, loss, 1);
      append(r, lse, N);
      append(r, dx, N * C);
      append(r, dw, V * C);
      return r;
    };
    const Floats whole = run(N, V);
    struct Tile {
      int64_t rows, cols;
    };
    for (const Tile t : {Tile{N, 256}, Tile{128, 256}, Tile{256, 512}, Tile{200, 400}, Tile{128, V}, Tile{N, 512}}) {
      const Floats got = run(t.rows, t.cols);
      const bool same = got.size() == whole.size() && std::memcmp(got.data(), whole.data(), got.size() * 4) == 0;
      std::string where;
      for (size_t i = 0; i < got.size() && where.empty(); i++)
        if (std::memcmp(&got[i], &whole[i], 4) != 0)
          where = "first difference at " + std::string(i == 0 ? "the loss" : i <= size_t(N) ? "lse" : i <= size_t(N + N * C) ? "dx" : "dW") +
                  " (element " + std::to_string(i) + ")";
      report(same, std::string("linear_cross_entropy (W ") + (w_vc ? "[V, C]" : "[C, V]") + ", tile " +
                       std::to_string(t.rows) + " x " + std::to_string(t.cols) + ") bitwise equals one tile", where);
    }
  }
}

void check_permute() {
  struct Case {
    std::vector<int64_t> shape;
    std::vector<int> perm;
  };
  const Case cases[] = {{{2, 3, 4, 5}, {0, 2, 1, 3}}, {{6, 7}, {1, 0}}, {{3, 4, 5}, {2, 0, 1}},
                        {{2, 1, 3, 2, 2, 3}, {5, 3, 0, 4, 1, 2}}};
  for (const Case& cs : cases) {
    int64_t numel = 1;
    std::string name = "permute [";
    for (size_t d = 0; d < cs.shape.size(); d++) {
      numel *= cs.shape[d];
      name += (d ? " " : "") + std::to_string(cs.shape[d]);
    }
    name += "] by (";
    for (size_t d = 0; d < cs.perm.size(); d++) name += (d ? " " : "") + std::to_string(cs.perm[d]);
    name += ")";
    const Floats x = random_floats(numel);
    check_kernel(name, [&](int t) {
      Arena a(t);
      const float* in = a.input(x);
      float* out = a.output(numel);
      permute(a.ctx, out, in, int(cs.shape.size()), cs.shape.data(), cs.perm.data());
      Floats r;
      append(r, out, numel);
      return finish(a, r);
    }, permute_ref(widen(x), cs.shape, cs.perm), kExact);
  }
}

void check_slices() {
  const int64_t rows = 5, wide = 9, narrow_cols = 4, offset = 2;
  const Floats x = random_floats(rows * wide), part = random_floats(rows * narrow_cols);
  Vec sliced, placed = widen(x);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < narrow_cols; c++) {
      sliced.push_back(x[r * wide + offset + c]);
      placed[r * wide + offset + c] = part[r * narrow_cols + c];
    }
  check_kernel("slice_last", [&](int t) {
    Arena a(t);
    const float* in = a.input(x);
    float* out = a.output(rows * narrow_cols);
    slice_last(a.ctx, out, in, rows, wide, offset, narrow_cols);
    Floats r;
    append(r, out, rows * narrow_cols);
    return finish(a, r);
  }, sliced, kExact);
  // place_last writes only its columns: out starts as x, and the other columns must keep x.
  check_kernel("place_last", [&](int t) {
    Arena a(t);
    const float* in = a.input(part);
    float* out = a.input(x);
    place_last(a.ctx, out, in, rows, wide, offset, narrow_cols);
    Floats r;
    append(r, out, rows * wide);
    return finish(a, r);
  }, placed, kExact);
}

// Data movement along any axis (runtime/cpu/kernels_movement.cpp, kernels_math.cpp's where) against
// naive loops over multi-indices in double; the scatter-adds sum repeated indices.
void check_movement() {
  // pad of [3, 4] by (1, 2) on axis 0 and (-1, 1) on axis 1 (a crop and a pad), filling with 0.5.
  const Floats x = random_floats(12);
  const std::vector<int64_t> in_shape = {3, 4}, before = {1, -1}, out_shape = {6, 4};
  Vec padded;
  for (int64_t i = 0; i < 6; i++)
    for (int64_t j = 0; j < 4; j++) {
      const int64_t si = i - 1, sj = j + 1;
      padded.push_back(si >= 0 && si < 3 && sj >= 0 && sj < 4 ? x[si * 4 + sj] : 0.5);
    }
  check_kernel("pad", [&](int t) {
    Arena a(t);
    const float* in = a.input(x);
    float* out = a.output(24);
    pad(a.ctx, out, in, 2, in_shape.data(), before.data(), out_shape.data(), 0x3f000000u);
    Floats r;
    append(r, out, 24);
    return finish(a, r);
  }, padded, kExact);

  // expand [3, 1, 2] -> [3, 4, 2], and its gradient summing the 4 copies back.
  const std::vector<int64_t> small = {3, 1, 2}, big = {3, 4, 2};
  const Floats s3 = random_floats(6), dy = random_floats(24);
  Vec expanded, summed(6, 0.0);
  for (int64_t i = 0; i < 3; i++)
    for (int64_t k = 0; k < 4; k++)
      for (int64_t j = 0; j < 2; j++) {
        expanded.push_back(s3[i * 2 + j]);
        summed[i * 2 + j] += dy[(i * 4 + k) * 2 + j];
      }
  check_kernel("expand", [&](int t) {
    Arena a(t);
    const float* in = a.input(s3);
    float* out = a.output(24);
    expand(a.ctx, out, in, 3, small.data(), big.data());
    Floats r;
    append(r, out, 24);
    return finish(a, r);
  }, expanded, kExact);
  check_kernel("expand_bwd", [&](int t) {
    Arena a(t);
    const float* g = a.input(dy);
    float* dx = a.output(6);
    expand_bwd(a.ctx, dx, g, 3, small.data(), big.data());
    Floats r;
    append(r, dx, 6);
    return finish(a, r);
  }, summed, kBackward);

  // take_axis on x [outer 2, D 5, inner 3]: index_select by 4 indices, gather by one per element.
  const int64_t outer = 2, D = 5, inner = 3, n = 4;
  const Floats table = random_floats(outer * D * inner), g = random_floats(outer * n * inner);
  const Ints rows = {4, 0, 4, 2};
  Ints each;
  for (int64_t k = 0; k < outer * n * inner; k++) each.push_back(int32_t((k * 7 + 3) % D));
  for (bool per_element : {false, true}) {
    const Ints& idx = per_element ? each : rows;
    const std::string what = per_element ? " (gather)" : " (index_select)";
    Vec taken, scattered(outer * D * inner, 0.0);
    for (int64_t o = 0; o < outer; o++)
      for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i < inner; i++) {
          const int64_t k = per_element ? idx[(o * n + j) * inner + i] : idx[j];
          taken.push_back(table[(o * D + k) * inner + i]);
          scattered[(o * D + k) * inner + i] += g[(o * n + j) * inner + i];
        }
    check_kernel("take_axis" + what, [&](int t) {
      Arena a(t);
      const float* xp = a.input(table);
      const int32_t* ip = a.input(idx);
      float* out = a.output(outer * n * inner);
      take_axis(a.ctx, out, xp, ip, outer, D, n, inner, per_element);
      Floats r;
      append(r, out, outer * n * inner);
      return finish(a, r);
    }, taken, kExact);
    check_kernel("take_axis_bwd" + what, [&](int t) {
      Arena a(t);
      const int32_t* ip = a.input(idx);
      const float* gp = a.input(g);
      float* dx = a.output(outer * D * inner);
      take_axis_bwd(a.ctx, dx, ip, gp, outer, D, n, inner, per_element);
      Floats r;
      append(r, dx, outer * D * inner);
      return finish(a, r);
    }, scattered, kBackward);
  }
  try {
    Arena a(2);
    const Ints bad = {1, 5, 0, 2};
    take_axis(a.ctx, a.output(outer * n * inner), a.input(table), a.input(bad), outer, D, n, inner, false);
    report(false, "take_axis rejects an index past the axis", "no error raised");
  } catch (const stow::Error& e) {
    const std::string m = e.what();
    report(m.find("index_select: index 5 at position 1 is outside [0, 5)") != std::string::npos,
           "take_axis rejects an index past the axis", m);
  }

  // where [2, 3] with cond [3] and b one number: a where cond is nonzero.
  const Floats cond = {1, 0, 1}, av = random_floats(6), bv = {-7};
  Vec chosen;
  for (int64_t i = 0; i < 6; i++) chosen.push_back(cond[i % 3] != 0 ? av[i] : -7.0);
  check_kernel("where", [&](int t) {
    Arena a(t);
    const float* cp = a.input(cond);
    const float* ap = a.input(av);
    const float* bp = a.input(bv);
    float* out = a.output(6);
    where(a.ctx, out, cp, ap, bp, 6, 1, 3, 1, 6, 1, 1);
    Floats r;
    append(r, out, 6);
    return finish(a, r);
  }, chosen, kExact);
}

void check_grad_norm() {
  const std::vector<int64_t> sizes = {1000, 7, 0, 333};
  std::vector<Floats> grads;
  double sq = 0;
  for (int64_t n : sizes) {
    grads.push_back(random_floats(n, -3, 3));
    for (float g : grads.back()) sq += double(g) * g;
  }
  check_kernel("grad_norm", [&](int t) {
    Arena a(t);
    std::vector<const float*> ptrs;
    for (const Floats& g : grads) ptrs.push_back(a.input(g));
    float* out = a.output(1);
    grad_norm(a.ctx, out, ptrs.data(), sizes.data(), int64_t(sizes.size()));
    Floats r;
    append(r, out, 1);
    return finish(a, r);
  }, {std::sqrt(sq)}, Tol{0, 1e-6});
}

// Three AdamW steps (t = 1, 2, 3) against the formula of kernels.h evaluated in double.
void check_adamw() {
  const int64_t n = 301;
  const AdamHyper hyper{1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 0};
  for (bool decay : {true, false}) {
    const float gscale = decay ? 0.5f : 1.0f;
    const Floats p0 = random_floats(n), m0 = random_floats(n, -0.1f, 0.1f), v0 = random_floats(n, 0, 0.01f);
    const std::vector<Floats> grads = {random_floats(n), random_floats(n), random_floats(n)};
    Vec p = widen(p0), m = widen(m0), v = widen(v0);
    for (int step = 1; step <= 3; step++)
      for (int64_t i = 0; i < n; i++) {
        const double lr = hyper.lr, b1 = hyper.beta1, b2 = hyper.beta2;
        const double g = double(grads[step - 1][i]) * gscale;
        if (decay) p[i] -= lr * double(hyper.weight_decay) * p[i];
        m[i] = b1 * m[i] + (1 - b1) * g;
        v[i] = b2 * v[i] + (1 - b2) * g * g;
        const double denom = std::sqrt(v[i]) / std::sqrt(1 - std::pow(b2, step)) + double(hyper.eps);
        p[i] -= lr / (1 - std::pow(b1, step)) * m[i] / denom;
      }
    const std::string name = decay ? "adamw (decay, gscale 0.5, 3 steps)" : "adamw (no decay, 3 steps)";
    check_kernel(name, [&](int t) {
      Arena a(t);
      std::vector<const float*> gp;
      for (const Floats& g : grads) gp.push_back(a.input(g));
      float* pp = a.input(p0);
      float* mp = a.input(m0);
      float* vp = a.input(v0);
      AdamHyper h = hyper;
      for (int step = 1; step <= 3; step++) {
        h.t = step;
        adamw(a.ctx, pp, gp[step - 1], mp, vp, n, h, gscale, decay);
      }
      Floats r;
      append(r, pp, n);
      append(r, mp, n);
      append(r, vp, n);
      return finish(a, r);
    }, concat({p, m, v}), Tol{1e-7, 1e-5});
  }
}

// The host pool's shares cover [0, count) once each, start on aligned boundaries, and a failing share
// reaches the caller; a pool of one thread runs everything itself.
void check_host_threads() {
  for (int threads : {1, 2, 3})
    for (int64_t count : {int64_t(0), int64_t(5), 2 * HostThreads::kMinShare + 7, 5 * HostThreads::kMinShare + 3}) {
      HostThreads pool(threads);
      std::vector<int> visits(size_t(count), 0);
      std::mutex mu;
      std::vector<std::pair<int64_t, int64_t>> shares;
      pool.for_shares(count, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; i++) visits[size_t(i)]++;
        std::lock_guard<std::mutex> lock(mu);
        shares.push_back({begin, end});
      });
      bool ok = std::all_of(visits.begin(), visits.end(), [](int n) { return n == 1; });
      for (const auto& [begin, end] : shares) ok &= begin % HostThreads::kAlign == 0 && begin < end;
      const size_t expected = size_t(std::clamp<int64_t>(count / HostThreads::kMinShare, 1, threads));
      ok &= shares.size() == (count == 0 ? 0 : expected);
      report(ok, "host pool of " + std::to_string(threads) + " threads covers " + std::to_string(count) + " elements once, in " +
                     std::to_string(expected) + " aligned share(s)");
    }
  HostThreads pool(2);
  std::string caught;
  try {
    pool.for_shares(4 * HostThreads::kMinShare, [](int64_t begin, int64_t) {
      if (begin > 0) throw Error("share failed");
    });
  } catch (const Error& e) {
    caught = e.what();
  }
  report(caught == "share failed", "host pool: a helper's failure reaches the caller", caught);
}

// AdamW on the host pool, at every pool size, is bitwise the device kernel's (adamw) on one thread:
// each element's update is the same arithmetic wherever it runs. Sizes that split into unequal and
// unaligned shares, and one below a share's minimum.
void check_host_adamw() {
  const AdamHyper hyper{1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 2};
  for (int64_t n : {int64_t(301), 3 * HostThreads::kMinShare + 5}) {
    const Floats p0 = random_floats(n), g = random_floats(n), m0 = random_floats(n, -0.1f, 0.1f), v0 = random_floats(n, 0, 0.01f);
    Arena a(1);
    float* pp = a.input(p0);
    float* mp = a.input(m0);
    float* vp = a.input(v0);
    adamw(a.ctx, pp, g.data(), mp, vp, n, hyper, 0.5f, true);
    const Floats want = concat_floats({Floats(pp, pp + n), Floats(mp, mp + n), Floats(vp, vp + n)});
    for (int threads : {1, 2, 3}) {
      HostThreads pool(threads);
      Floats p = p0, m = m0, v = v0;
      host_adamw(pool, p.data(), g.data(), m.data(), v.data(), n, hyper, 0.5f, true);
      const Floats got = concat_floats({p, m, v});
      report(std::memcmp(got.data(), want.data(), want.size() * 4) == 0,
             "host_adamw on " + std::to_string(threads) + " thread(s), " + std::to_string(n) + " elements: bitwise adamw's");
    }
  }
}

// The clipping factor the CUDA backend's generated code computes (kernel_math.h), against
// torch.nn.utils.clip_grad_norm_'s rule written out: scale by clip / (norm + 1e-6) when that is below 1.
void check_clip_scale() {
  bool ok = true;
  for (float clip : {0.0f, 0.5f, 1.0f, 4.0f})
    for (float norm : {0.0f, 0.25f, 1.0f, 3.0f, 1e6f}) {
      const double factor = double(clip) / (double(norm) + 1e-6);
      const double want = clip > 0 && factor < 1 ? factor : 1.0;
      ok &= std::fabs(double(math::clip_scale(clip, norm)) - want) <= 1e-7 * want;
    }
  report(ok, "clip_scale is min(1, clip / (norm + 1e-6)), and 1 without clipping");
}

// The emulated link is full duplex: a copy back to the host does not queue behind a long copy to the
// device. With the link at 1 MB/s, a 2 MB copy to the device holds its direction for 2 s; a 1 KB copy
// back, submitted after it, must be done long before (serialized, it would end after 2 s). Both copies
// must also have moved their bytes, and the tickets must tell the directions apart.
void check_duplex_link() {
  TransferEngine engine(1e6, 1);
  Floats to_device(500000), from_host(500000, 1.5f), to_host(256), from_device(256, 2.5f);
  const auto start = std::chrono::steady_clock::now();
  const int64_t in = engine.copy(to_device.data(), from_host.data(), 4 * 500000, true);
  const int64_t out = engine.copy(to_host.data(), from_device.data(), 4 * 256, false);
  engine.wait_copy(out);
  const double back = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  engine.wait_copy(in);
  const double both = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const bool moved = to_device == from_host && to_host == from_device;
  report(back < 1.0 && both >= 2.0 && moved && engine.h2d_bytes == 2000000 && engine.d2h_bytes == 1024,
         "transfer engine: the two directions of the link run side by side",
         "back after " + std::to_string(back) + " s, both after " + std::to_string(both) + " s");
}

}  // namespace

int main() {
  check_fill_copy_iota();
  check_broadcast();
  check_sum_rows();
  check_embedding();
  check_bad_ids();
  check_matmul();
  check_layernorm();
  check_gelu();
  check_dropout();
  check_vexp();
  check_attention();
  check_grouped_attention();
  check_attention_variants();
  check_layernorm_without_bias();
  check_rope();
  check_silu();
  check_cross_entropy();
  check_linear_cross_entropy();
  check_linear_cross_entropy_tiles();
  check_permute();
  check_slices();
  check_movement();
  check_grad_norm();
  check_adamw();
  check_host_threads();
  check_host_adamw();
  check_clip_scale();
  check_duplex_link();
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
