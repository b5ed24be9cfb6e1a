// Checks every launch wrapper of runtime/cuda/cuda_kernels.h against the CPU kernel of the same name
// (runtime/cpu/kernels*.cpp, independent code: OpenMP loops and OpenBLAS), in the style of llm.c's
// per-kernel tests: the same inputs go to both, on shapes chosen to hit the edges of the CUDA kernels'
// tiling (sizes that are not multiples of the block (256) or the warp (32), T = 1, one head, head sizes
// that are not multiples of 32, grouped and multi-query attention, vocabularies that are not multiples
// of the LM head's tile, N = 0 where the contract allows it).
//
// Kernels whose summation order is the same as the CPU's by design (elementwise formulas from
// kernel_math.h, data movement, the embedding gradients, which sort positions as the CPU does, AdamW)
// must match bitwise. Reductions are compared within a tolerance stated where it is used.
//
// It is written against the CUDA runtime API (cudaMalloc, cudaMemcpy, stream synchronisation), so the
// same program is valid on a GPU; the test (test/system/cuda_kernels.test.ts) builds it against the emulated
// CUDA target. On a GPU the "bitwise" kernels would hold only where nvcc does not contract a * b + c
// into an FMA differently from g++.
//
// Each check runs in its own process (the program re-runs itself with the check's name): a CUDA error is
// sticky for the rest of a process, and a kernel that crashes or hangs must not take the other checks
// with it. Prints "ok <name>" or "FAIL <name>: <detail>" per check and a final "N passed, M failed";
// exits 1 on any failure.
#include <cuda_runtime.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "comm/comm.h"
#include "cuda/cuda_kernels.h"
#include "cuda/runtime.h"
#include "core/kernel_math.h"
#include "cpu/kernels.h"

extern char** environ;

using namespace stow;
using Floats = std::vector<float>;
using Ints = std::vector<int32_t>;
using Vec = std::vector<double>;

namespace {

// ---------------------------------------------------------------------------------------------------
// Inputs

std::mt19937 rng(20261202);

Floats random_floats(size_t n, float lo = -1, float hi = 1) {
  std::uniform_real_distribution<float> dist(lo, hi);
  Floats v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

Ints random_ids(size_t n, int32_t below) {
  std::uniform_int_distribution<int32_t> dist(0, below - 1);
  Ints v(n);
  for (int32_t& x : v) x = dist(rng);
  return v;
}

// x rounded to the nearest bfloat16, ties to even (what cuBLAS's 32F_FAST_16BF does to its inputs),
// written here from the format's definition rather than taken from the emulation.
float bf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  if (std::isnan(x)) return x;
  const uint32_t low = bits & 0xffffu, keep = bits & 0xffff0000u;
  uint32_t out = keep;
  if (low > 0x8000u || (low == 0x8000u && (keep & 0x10000u))) out = keep + 0x10000u;
  float r;
  std::memcpy(&r, &out, 4);
  return r;
}

Floats rounded_bf16(const Floats& v) {
  Floats out(v.size());
  for (size_t i = 0; i < v.size(); i++) out[i] = bf16(v[i]);
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Comparison: each returns "" on a match, else a description of the worst element.

std::string show(float x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g (%a)", double(x), double(x));
  return buf;
}

std::string bitwise(const Floats& got, const Floats& want) {
  if (got.size() != want.size()) return "size " + std::to_string(got.size()) + ", expected " + std::to_string(want.size());
  size_t wrong = 0, first = 0;
  for (size_t i = 0; i < got.size(); i++)
    if (std::memcmp(&got[i], &want[i], 4) != 0 && !wrong++) first = i;
  if (wrong == 0) return "";
  return std::to_string(wrong) + " of " + std::to_string(got.size()) + " elements differ; first: element " +
         std::to_string(first) + " is " + show(got[first]) + ", the CPU's " + show(want[first]);
}

std::string bitwise_ints(const Ints& got, const Ints& want) {
  if (got.size() != want.size()) return "size " + std::to_string(got.size()) + ", expected " + std::to_string(want.size());
  for (size_t i = 0; i < got.size(); i++)
    if (got[i] != want[i])
      return "element " + std::to_string(i) + " is " + std::to_string(got[i]) + ", the CPU's " + std::to_string(want[i]);
  return "";
}

// The largest |got - want| / allowed of the comparisons since the last Check::expect, which prints it
// when STOW_CHECK_VERBOSE is set: how close the reductions come to their tolerances.
double g_closest = 0;

// Every |got - want| within allowed[i]; NaN anywhere fails.
std::string within(const Floats& got, const Floats& want, const Vec& allowed) {
  if (got.size() != want.size()) return "size " + std::to_string(got.size()) + ", expected " + std::to_string(want.size());
  double worst = -1;
  size_t at = 0;
  for (size_t i = 0; i < got.size(); i++) {
    // Equal values match, infinities included (attention's lse of a row that sees no key is -inf).
    const double err = got[i] == want[i] ? 0.0 : std::fabs(double(got[i]) - double(want[i]));
    const double excess = std::isnan(err) ? INFINITY : err / allowed[i];
    if (!(err <= allowed[i]) && excess > worst) worst = excess, at = i;
  }
  for (size_t i = 0; i < got.size(); i++)
    if (allowed[i] > 0 && got[i] != want[i]) g_closest = std::max(g_closest, std::fabs(double(got[i]) - double(want[i])) / allowed[i]);
  if (worst < 0) return "";
  char buf[160];
  std::snprintf(buf, sizeof buf, " (tolerance %.3g, exceeded %.3gx)", allowed[at], worst);
  return "element " + std::to_string(at) + " is " + show(got[at]) + ", the CPU's " + show(want[at]) + buf;
}

std::string close(const Floats& got, const Floats& want, double atol, double rtol) {
  Vec allowed(want.size());
  for (size_t i = 0; i < want.size(); i++) allowed[i] = atol + rtol * std::fabs(double(want[i]));
  return within(got, want, allowed);
}

// ---------------------------------------------------------------------------------------------------
// The device and the two arenas a case runs in. Both arenas get the same layout (inputs, then outputs,
// then the planned workspace), so the CPU kernel and the CUDA wrapper see the same offsets.

void cuda_ok(cudaError_t e, const std::string& what) {
  if (e != cudaSuccess) throw std::runtime_error("CUDA error in " + what + ": " + cudaGetErrorString(e));
}

template <class T>
struct Buf {
  T* h;  // in the CPU's arena
  T* d;  // in device memory
  size_t n;
};

class Twin {
 public:
  explicit Twin(cuda::Runtime& rt) : rt_(rt) {
    host_ = static_cast<uint8_t*>(std::aligned_alloc(64, kBytes));
    void* d = nullptr;
    cuda_ok(cudaMalloc(&d, kBytes), "cudaMalloc of the arena");
    dev_ = static_cast<uint8_t*>(d);
    cpu.arena = host_;
    gpu.arena = dev_;
    for (Ctx* c : {&cpu, &gpu}) {
      c->arena_bytes = kBytes;
      c->threads = 2;
    }
    cpu.node = "cpu reference";
    gpu.node = "cuda_kernels_check";
    gpu.gpu = &rt;
  }
  ~Twin() {
    cudaDeviceSynchronize();
    cudaFree(dev_);
    std::free(host_);
  }
  Twin(const Twin&) = delete;
  Twin& operator=(const Twin&) = delete;

  // A new case: an empty layout and fresh accounting.
  void reset() {
    sync();
    used_ = 0;
    outputs_end_ = 0;
    for (Ctx* c : {&cpu, &gpu}) {
      c->high_water = 0;
      c->ws_offset = 0;
      c->ws_bytes = 0;
      c->comm_calls = 0;
      c->comm_bytes = 0;
    }
  }

  template <class T>
  Buf<T> in(const std::vector<T>& v) {
    Buf<T> b = alloc<T>(v.size());
    if (!v.empty()) {
      std::memcpy(b.h, v.data(), v.size() * sizeof(T));
      cuda_ok(cudaMemcpy(b.d, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice), "copying an input");
      // The kernels run on the runtime's non-blocking compute stream, which does not wait for the legacy
      // stream's copy: wait for it here.
      cuda_ok(cudaDeviceSynchronize(), "copying an input");
    }
    return b;
  }
  // An input the kernel also writes (in place, or only some of its elements): it counts as an output.
  template <class T>
  Buf<T> inout(const std::vector<T>& v) {
    Buf<T> b = in(v);
    outputs_end_ = used_;
    return b;
  }
  // Outputs start as NaN on both sides, so an element the kernel forgets to write cannot match.
  Buf<float> out(size_t n) {
    Buf<float> b = in(Floats(n, std::numeric_limits<float>::quiet_NaN()));
    outputs_end_ = used_;
    return b;
  }
  Buf<int32_t> out_ints(size_t n) {
    Buf<int32_t> b = in(Ints(n, -7));
    outputs_end_ = used_;
    return b;
  }
  void workspace(int64_t bytes) {
    used_ = align(used_);
    for (Ctx* c : {&cpu, &gpu}) {
      c->ws_offset = used_;
      c->ws_bytes = bytes;
    }
    used_ += bytes;
    if (used_ > kBytes) throw std::runtime_error("the test arena is too small");
  }

  // Waits for the compute stream (the legacy stream's cudaMemcpy does not), then copies back.
  template <class T>
  std::vector<T> device(const Buf<T>& b) {
    sync();
    std::vector<T> v(b.n);
    if (b.n > 0) cuda_ok(cudaMemcpy(v.data(), b.d, b.n * sizeof(T), cudaMemcpyDeviceToHost), "copying a result back");
    return v;
  }
  template <class T>
  std::vector<T> host(const Buf<T>& b) const {
    return std::vector<T>(b.h, b.h + b.n);
  }

  void sync() { cuda_ok(cudaStreamSynchronize(rt_.compute()), "the kernels"); }

  // The CUDA wrapper marked its outputs (Ctx::touch, which the plan's arena accounting relies on): its
  // high-water mark reaches the end of the last output and does not pass the planned workspace.
  std::string accounting() const {
    if (gpu.high_water >= outputs_end_ && gpu.high_water <= used_) return "";
    return "arena high-water " + std::to_string(gpu.high_water) + ", expected between the outputs' end " +
           std::to_string(outputs_end_) + " and the workspace's end " + std::to_string(used_);
  }

  Ctx cpu, gpu;

 private:
  static constexpr int64_t kBytes = int64_t(16) << 20;
  static int64_t align(int64_t x) { return (x + 255) / 256 * 256; }
  template <class T>
  Buf<T> alloc(size_t n) {
    used_ = align(used_);
    Buf<T> b{reinterpret_cast<T*>(host_ + used_), reinterpret_cast<T*>(dev_ + used_), n};
    used_ += int64_t(n * sizeof(T));
    if (used_ > kBytes) throw std::runtime_error("the test arena is too small");
    return b;
  }

  cuda::Runtime& rt_;
  uint8_t* host_ = nullptr;
  uint8_t* dev_ = nullptr;
  int64_t used_ = 0, outputs_end_ = 0;
};

// One check's outcome: the failing cases, each with its detail.
class Check {
 public:
  Check(cuda::Runtime& rt, Twin& t) : rt(rt), t(t) {}
  // Records `detail` (a mismatch; "" is a match) for the case.
  void expect(const std::string& label, const std::string& detail) {
    if (std::getenv("STOW_CHECK_VERBOSE") != nullptr && g_closest > 0) std::printf("  %s: error %.3g of the tolerance\n", label.c_str(), g_closest);
    g_closest = 0;
    cases++;
    if (!detail.empty()) failures.push_back(label + ": " + detail);
  }
  // The comparison of one output plus the case's arena accounting.
  void expect_case(const std::string& label, const std::string& detail) {
    expect(label, detail);
    expect(label, t.accounting());
  }
  cuda::Runtime& rt;
  Twin& t;
  int cases = 0;
  std::vector<std::string> failures;
};

std::string cat(const std::string& a, const std::string& b) { return a.empty() ? b : b.empty() ? a : a + "; " + b; }

// ---------------------------------------------------------------------------------------------------
// Elementwise and data movement: bitwise.

void check_iota(Check& k) {
  for (int64_t n : {int64_t(0), int64_t(1), int64_t(1000)}) {
    Twin& t = k.t;
    t.reset();
    auto out = t.out_ints(size_t(n));
    stow::iota(t.cpu, out.h, n);
    cuda::iota(t.gpu, out.d, n);
    k.expect_case("n=" + std::to_string(n), bitwise_ints(t.device(out), t.host(out)));
  }
}

void check_fill(Check& k) {
  for (int64_t n : {int64_t(0), int64_t(1), int64_t(777)}) {
    Twin& t = k.t;
    t.reset();
    auto out = t.out(size_t(n));
    stow::fill(t.cpu, out.h, n, -2.5f);
    cuda::fill(t.gpu, out.d, n, -2.5f);
    k.expect_case("n=" + std::to_string(n), bitwise(t.device(out), t.host(out)));
  }
}

// add and mul: b broadcast over a's suffix (nb of 1, a row, all of a), and n = 0.
void check_binary(Check& k, void (*cpu)(Ctx&, float*, const float*, const float*, int64_t, int64_t),
                  void (*gpu)(Ctx&, float*, const float*, const float*, int64_t, int64_t)) {
  struct Shape {
    int64_t n, nb;
  };
  for (Shape s : {Shape{3 * 37, 37}, Shape{301, 1}, Shape{301, 301}, Shape{0, 1}, Shape{7 * 300, 300}}) {
    Twin& t = k.t;
    t.reset();
    auto a = t.in(random_floats(size_t(s.n), -3, 3));
    auto b = t.in(random_floats(size_t(s.nb), -3, 3));
    auto out = t.out(size_t(s.n));
    cpu(t.cpu, out.h, a.h, b.h, s.n, s.nb);
    gpu(t.gpu, out.d, a.d, b.d, s.n, s.nb);
    k.expect_case("n=" + std::to_string(s.n) + " nb=" + std::to_string(s.nb), bitwise(t.device(out), t.host(out)));
  }
}

void check_add(Check& k) { check_binary(k, stow::add, cuda::add); }
void check_mul(Check& k) { check_binary(k, stow::mul, cuda::mul); }

void check_scale(Check& k) {
  for (int64_t n : {int64_t(0), int64_t(1001)}) {
    Twin& t = k.t;
    t.reset();
    auto a = t.in(random_floats(size_t(n), -5, 5));
    auto out = t.out(size_t(n));
    stow::scale(t.cpu, out.h, a.h, 0.3f, n);
    cuda::scale(t.gpu, out.d, a.d, 0.3f, n);
    k.expect_case("n=" + std::to_string(n), bitwise(t.device(out), t.host(out)));
  }
}

// y = f(x) and dx = f'(x) dy over a range that reaches the saturated tails of tanh and the sigmoid.
void check_activation(Check& k, void (*cpu_fwd)(Ctx&, float*, const float*, int64_t),
                      void (*gpu_fwd)(Ctx&, float*, const float*, int64_t),
                      void (*cpu_bwd)(Ctx&, float*, const float*, const float*, int64_t),
                      void (*gpu_bwd)(Ctx&, float*, const float*, const float*, int64_t), bool fwd, bool dx_over_dy) {
  for (int64_t n : {int64_t(0), int64_t(1), int64_t(1000)}) {
    Twin& t = k.t;
    t.reset();
    Floats xs = random_floats(size_t(n), -12, 12);
    if (n > 2) xs[0] = 0.0f, xs[1] = -90.0f, xs[2] = 90.0f;  // vexp's clamps
    auto x = t.in(xs);
    const std::string label = "n=" + std::to_string(n);
    if (fwd) {
      auto y = t.out(size_t(n));
      cpu_fwd(t.cpu, y.h, x.h, n);
      gpu_fwd(t.gpu, y.d, x.d, n);
      k.expect_case(label, bitwise(t.device(y), t.host(y)));
    } else {
      auto dy = dx_over_dy ? t.inout(random_floats(size_t(n), -2, 2)) : t.in(random_floats(size_t(n), -2, 2));
      // dx may be dy (silu_bwd's contract): then the kernel reads each dy before writing it.
      auto dx = dx_over_dy ? dy : t.out(size_t(n));
      cpu_bwd(t.cpu, dx.h, x.h, dy.h, n);
      gpu_bwd(t.gpu, dx.d, x.d, dy.d, n);
      k.expect_case(label + (dx_over_dy ? " (dx over dy)" : ""), bitwise(t.device(dx), t.host(dx)));
    }
  }
}

void check_gelu_fwd(Check& k) { check_activation(k, stow::gelu_fwd, cuda::gelu_fwd, nullptr, nullptr, true, false); }
void check_gelu_bwd(Check& k) { check_activation(k, nullptr, nullptr, stow::gelu_bwd, cuda::gelu_bwd, false, false); }
void check_silu_fwd(Check& k) { check_activation(k, stow::silu_fwd, cuda::silu_fwd, nullptr, nullptr, true, false); }
void check_silu_bwd(Check& k) {
  check_activation(k, nullptr, nullptr, stow::silu_bwd, cuda::silu_bwd, false, false);
  check_activation(k, nullptr, nullptr, stow::silu_bwd, cuda::silu_bwd, false, true);
}

// Rows at position r % T, D not a multiple of 32 (D/2 odd), forward and inverse, and in place (y = x).
void check_rope(Check& k) {
  struct Shape {
    int64_t rows, T, D;
  };
  for (Shape s : {Shape{15, 5, 6}, Shape{1, 1, 2}, Shape{12, 3, 70}, Shape{0, 4, 8}})
    for (bool inverse : {false, true})
      for (bool in_place : {false, true}) {
        Twin& t = k.t;
        t.reset();
        auto x = in_place ? t.inout(random_floats(size_t(s.rows * s.D), -2, 2)) : t.in(random_floats(size_t(s.rows * s.D), -2, 2));
        auto y = in_place ? x : t.out(size_t(s.rows * s.D));
        t.workspace(s.T * s.D * 4);
        stow::rope(t.cpu, y.h, x.h, s.rows, s.T, s.D, 10000.0f, inverse);
        cuda::rope(t.gpu, y.d, x.d, s.rows, s.T, s.D, 10000.0f, inverse);
        k.expect_case("rows=" + std::to_string(s.rows) + " T=" + std::to_string(s.T) + " D=" + std::to_string(s.D) +
                          (inverse ? " inverse" : "") + (in_place ? " in place" : ""),
                      bitwise(t.device(y), t.host(y)));
      }
}

void check_permute(Check& k) {
  struct Shape {
    std::vector<int64_t> shape;
    std::vector<int> perm;
  };
  const std::vector<Shape> shapes = {
      {{2, 3, 5, 7}, {0, 2, 1, 3}},  // the attention head split
      {{2, 3, 5, 7}, {3, 1, 0, 2}},
      {{33}, {0}},
      {{37, 9}, {1, 0}},
      {{2, 1, 3, 2, 2, 3}, {5, 4, 3, 2, 1, 0}},
      {{4, 0, 3}, {2, 0, 1}},  // no elements
  };
  for (const Shape& s : shapes) {
    Twin& t = k.t;
    t.reset();
    int64_t numel = 1;
    std::string label = "shape";
    for (int64_t d : s.shape) numel *= d, label += " " + std::to_string(d);
    label += " perm";
    for (int p : s.perm) label += " " + std::to_string(p);
    auto in = t.in(random_floats(size_t(numel)));
    auto out = t.out(size_t(numel));
    const int rank = int(s.shape.size());
    stow::permute(t.cpu, out.h, in.h, rank, s.shape.data(), s.perm.data());
    cuda::permute(t.gpu, out.d, in.d, rank, s.shape.data(), s.perm.data());
    k.expect_case(label, bitwise(t.device(out), t.host(out)));
  }
}

void check_slice_last(Check& k) {
  struct Shape {
    int64_t rows, cols_in, offset, cols_out;
  };
  for (Shape s : {Shape{7, 45, 13, 20}, Shape{3, 5, 0, 5}, Shape{300, 3, 2, 1}, Shape{0, 4, 1, 2}}) {
    Twin& t = k.t;
    t.reset();
    auto in = t.in(random_floats(size_t(s.rows * s.cols_in)));
    auto out = t.out(size_t(s.rows * s.cols_out));
    stow::slice_last(t.cpu, out.h, in.h, s.rows, s.cols_in, s.offset, s.cols_out);
    cuda::slice_last(t.gpu, out.d, in.d, s.rows, s.cols_in, s.offset, s.cols_out);
    k.expect_case("rows=" + std::to_string(s.rows) + " cols " + std::to_string(s.cols_in) + " [" + std::to_string(s.offset) +
                      ", +" + std::to_string(s.cols_out) + ")",
                  bitwise(t.device(out), t.host(out)));
  }
}

// place_last writes only its columns: the rest of out keeps what was there (the same on both sides).
void check_place_last(Check& k) {
  struct Shape {
    int64_t rows, cols_out, offset, cols_in;
  };
  for (Shape s : {Shape{7, 45, 13, 20}, Shape{3, 5, 0, 5}, Shape{300, 3, 2, 1}, Shape{0, 4, 1, 2}}) {
    Twin& t = k.t;
    t.reset();
    auto in = t.in(random_floats(size_t(s.rows * s.cols_in)));
    auto out = t.inout(random_floats(size_t(s.rows * s.cols_out), 5, 6));
    stow::place_last(t.cpu, out.h, in.h, s.rows, s.cols_out, s.offset, s.cols_in);
    cuda::place_last(t.gpu, out.d, in.d, s.rows, s.cols_out, s.offset, s.cols_in);
    k.expect_case("rows=" + std::to_string(s.rows) + " cols " + std::to_string(s.cols_out) + " [" + std::to_string(s.offset) +
                      ", +" + std::to_string(s.cols_in) + ")",
                  bitwise(t.device(out), t.host(out)));
  }
}

// ---------------------------------------------------------------------------------------------------
// Embeddings: bitwise (the gradients sum each row's positions in position order, as the CPU does).

void check_embedding_fwd(Check& k) {
  struct Shape {
    int64_t N, C, V;
  };
  for (Shape s : {Shape{37, 45, 11}, Shape{1, 1, 1}, Shape{0, 8, 3}, Shape{300, 3, 1000}}) {
    Twin& t = k.t;
    t.reset();
    auto table = t.in(random_floats(size_t(s.V * s.C)));
    auto idx = t.in(random_ids(size_t(s.N), int32_t(s.V)));
    auto out = t.out(size_t(s.N * s.C));
    stow::embedding_fwd(t.cpu, out.h, table.h, idx.h, s.N, s.C, s.V);
    cuda::embedding_fwd(t.gpu, out.d, table.d, idx.d, s.N, s.C, s.V);
    k.expect_case("N=" + std::to_string(s.N) + " C=" + std::to_string(s.C) + " V=" + std::to_string(s.V),
                  bitwise(t.device(out), t.host(out)));
  }
}

struct EmbShape {
  int64_t N, C, V;
};
const std::vector<EmbShape> kEmbShapes = {{300, 5, 13}, {37, 45, 100}, {1, 3, 1}, {0, 4, 6}};

std::string emb_label(const EmbShape& s) {
  return "N=" + std::to_string(s.N) + " C=" + std::to_string(s.C) + " V=" + std::to_string(s.V);
}

// Many repeats of few ids (long per-row sums) and, with V = 100, rows never hit.
void check_embedding_bwd(Check& k) {
  for (const EmbShape& s : kEmbShapes) {
    Twin& t = k.t;
    t.reset();
    auto idx = t.in(random_ids(size_t(s.N), int32_t(s.V)));
    auto dy = t.in(random_floats(size_t(s.N * s.C)));
    auto dtable = t.out(size_t(s.V * s.C));
    stow::embedding_bwd(t.cpu, dtable.h, idx.h, dy.h, s.N, s.C, s.V);
    cuda::embedding_bwd(t.gpu, dtable.d, idx.d, dy.d, s.N, s.C, s.V);
    k.expect_case(emb_label(s), bitwise(t.device(dtable), t.host(dtable)));
  }
}

// out = acc + the gradient, also in place (out = acc). The planned workspace is the CPU kernel's.
void check_embedding_bwd_acc(Check& k) {
  for (const EmbShape& s : kEmbShapes)
    for (bool in_place : {false, true}) {
      Twin& t = k.t;
      t.reset();
      auto idx = t.in(random_ids(size_t(s.N), int32_t(s.V)));
      auto dy = t.in(random_floats(size_t(s.N * s.C)));
      auto acc = in_place ? t.inout(random_floats(size_t(s.V * s.C))) : t.in(random_floats(size_t(s.V * s.C)));
      auto out = in_place ? acc : t.out(size_t(s.V * s.C));
      t.workspace((s.V + 1 + s.N) * 4 + int64_t(t.cpu.threads) * s.C * 4);
      stow::embedding_bwd_acc(t.cpu, out.h, acc.h, idx.h, dy.h, s.N, s.C, s.V);
      cuda::embedding_bwd_acc(t.gpu, out.d, acc.d, idx.d, dy.d, s.N, s.C, s.V);
      k.expect_case(emb_label(s) + (in_place ? " in place" : ""), bitwise(t.device(out), t.host(out)));
    }
}

// ---------------------------------------------------------------------------------------------------
// Matrix products.

// The error bound of a length-K dot product in fp32 in any summation order is K u sum |a_k b_k| (u =
// 2^-24); two implementations each within it differ by at most twice that. Computed in double from the
// operands as the product sees them.
Vec dot_bounds(const Floats& a, const Floats& b, int64_t batch, int64_t M, int64_t N, int64_t K, bool ta, bool tb,
               int64_t a_stride, int64_t b_stride) {
  Vec bound(size_t(batch * M * N));
  const double u = std::ldexp(1.0, -24);
  for (int64_t z = 0; z < batch; z++)
    for (int64_t m = 0; m < M; m++)
      for (int64_t n = 0; n < N; n++) {
        double s = 0;
        for (int64_t kk = 0; kk < K; kk++)
          s += std::fabs(double(a[size_t(z * a_stride + (ta ? kk * M + m : m * K + kk))]) *
                         double(b[size_t(z * b_stride + (tb ? n * K + kk : kk * N + n))]));
        bound[size_t((z * M + m) * N + n)] = 2.0 * double(K) * u * s + 1e-30;
      }
  return bound;
}

void check_matmul(Check& k) {
  // The rounding itself, on ties: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 and goes to the even 1;
  // 1 + 3 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6 and goes to the even 1 + 2^-6.
  k.expect("bf16 rounding self-test",
           bf16(1.00390625f) == 1.0f && bf16(1.01171875f) == 1.015625f && bf16(1.0078125f) == 1.0078125f ? ""
                                                                                                             : "bf16() is not round-to-nearest-even");
  struct Shape {
    int64_t batch, M, N, K;
    bool ta, tb;
    bool a_batched, b_batched;  // b not batched: one weight shared by the batch (stride 0)
  };
  std::vector<Shape> shapes;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) shapes.push_back({3, 5, 37, 33, ta, tb, true, true});
  shapes.push_back({2, 17, 9, 70, false, true, true, false});
  shapes.push_back({2, 17, 9, 70, true, false, false, true});
  shapes.push_back({1, 1, 1, 1, false, false, true, true});
  shapes.push_back({1, 40, 1, 3, true, true, true, true});
  for (const cuda::Precision precision : {cuda::FP32, cuda::BF16})
    for (const Shape& s : shapes) {
      Twin& t = k.t;
      t.reset();
      const int64_t a_stride = s.a_batched ? s.M * s.K : 0, b_stride = s.b_batched ? s.K * s.N : 0;
      const Floats av = random_floats(size_t((s.a_batched ? s.batch : 1) * s.M * s.K));
      const Floats bv = random_floats(size_t((s.b_batched ? s.batch : 1) * s.K * s.N));
      const bool bf = precision == cuda::BF16;
      // The reference multiplies the operands as the product sees them: rounded to bf16 for BF16 (their
      // products are exact in fp32, so only the fp32 accumulation differs).
      const Floats ar = bf ? rounded_bf16(av) : av, br = bf ? rounded_bf16(bv) : bv;
      auto a = t.in(av), b = t.in(bv), a_ref = t.in(ar), b_ref = t.in(br);
      auto out = t.out(size_t(s.batch * s.M * s.N));
      stow::matmul(t.cpu, out.h, a_ref.h, b_ref.h, s.batch, s.M, s.N, s.K, s.ta, s.tb, a_stride, b_stride);
      cuda::matmul(t.gpu, out.d, a.d, b.d, s.batch, s.M, s.N, s.K, s.ta, s.tb, a_stride, b_stride, precision);
      const Floats got = t.device(out);
      const std::string label = std::string(bf ? "bf16 " : "fp32 ") + "batch=" + std::to_string(s.batch) + " " +
                                std::to_string(s.M) + "x" + std::to_string(s.N) + "x" + std::to_string(s.K) +
                                (s.ta ? " ta" : "") + (s.tb ? " tb" : "") + (s.a_batched ? "" : " a_stride=0") +
                                (s.b_batched ? "" : " b_stride=0");
      k.expect_case(label, within(got, t.host(out), dot_bounds(ar, br, s.batch, s.M, s.N, s.K, s.ta, s.tb, a_stride, b_stride)));
      if (bf && s.K > 1) {
        // The precision is honoured: the unrounded fp32 product is further away than the bound allows.
        stow::matmul(t.cpu, out.h, a.h, b.h, s.batch, s.M, s.N, s.K, s.ta, s.tb, a_stride, b_stride);
        k.expect(label + " rounds its inputs",
                 within(got, t.host(out), dot_bounds(av, bv, s.batch, s.M, s.N, s.K, s.ta, s.tb, a_stride, b_stride)).empty()
                     ? "matches the unrounded fp32 product: the inputs were not rounded to bf16"
                     : "");
      }
    }
  // Edge cases of the contract: K = 0 gives zeros; M = 0 or batch = 0 write nothing.
  for (const cuda::Precision precision : {cuda::FP32, cuda::BF16}) {
    Twin& t = k.t;
    t.reset();
    auto a = t.in(Floats{1.0f}), b = t.in(Floats{1.0f});
    auto out = t.out(2 * 3 * 4);
    stow::matmul(t.cpu, out.h, a.h, b.h, 2, 3, 4, 0, false, false, 0, 0);
    cuda::matmul(t.gpu, out.d, a.d, b.d, 2, 3, 4, 0, false, false, 0, 0, precision);
    k.expect_case(std::string(precision == cuda::BF16 ? "bf16" : "fp32") + " K=0", bitwise(t.device(out), t.host(out)));
    // An empty output: a sentinel where it starts must survive.
    t.reset();
    auto sentinel = t.in(Floats{42.0f});
    cuda::matmul(t.gpu, sentinel.d, a.d, b.d, 2, 0, 4, 3, false, false, 0, 0, precision);
    cuda::matmul(t.gpu, sentinel.d, a.d, b.d, 2, 3, 0, 3, false, false, 0, 0, precision);
    cuda::matmul(t.gpu, sentinel.d, a.d, b.d, 0, 3, 4, 3, false, false, 0, 0, precision);
    k.expect(std::string(precision == cuda::BF16 ? "bf16" : "fp32") + " M=0, N=0, batch=0", bitwise(t.device(sentinel), Floats{42.0f}));
  }
}

// ---------------------------------------------------------------------------------------------------
// Reductions. The CUDA kernels sum in other orders than the CPU's (warp shuffles, strided partials);
// inputs are O(1), so a reordered fp32 sum of n terms differs by a few n u |sum of |terms||. The
// tolerances below are at least 10x the largest difference seen (STOW_CHECK_VERBOSE=1 prints how close
// each comparison comes), and 100x or more below what a wrong index, a dropped term or a missing scale
// gives (a key dropped from each attention tile, a row tile dropped from dW, a row skipped by the
// column sums all fail by 1000x or more).

void check_sum_rows(Check& k) {
  struct Shape {
    int64_t rows, cols;
  };
  for (Shape s : {Shape{70, 45}, Shape{1, 300}, Shape{33, 1}, Shape{0, 5}, Shape{5, 0}}) {
    Twin& t = k.t;
    t.reset();
    auto in = t.in(random_floats(size_t(s.rows * s.cols)));
    auto out = t.out(size_t(s.cols));
    stow::sum_rows(t.cpu, out.h, in.h, s.rows, s.cols);
    cuda::sum_rows(t.gpu, out.d, in.d, s.rows, s.cols);
    // Sums of up to 70 terms of magnitude <= 1.
    k.expect_case("rows=" + std::to_string(s.rows) + " cols=" + std::to_string(s.cols), close(t.device(out), t.host(out), 1e-5, 1e-5));
  }
}

struct NormShape {
  int64_t rows, C;
  bool bias;
};
const std::vector<NormShape> kNormShapes = {{9, 45, true}, {37, 100, false}, {3, 1, true}, {1, 300, true}, {0, 7, true}};

std::string norm_label(const NormShape& s) {
  return "rows=" + std::to_string(s.rows) + " C=" + std::to_string(s.C) + (s.bias ? "" : " no bias");
}

void check_layernorm_fwd(Check& k) {
  for (const NormShape& s : kNormShapes) {
    Twin& t = k.t;
    t.reset();
    // A large mean: the two-pass statistics must not cancel.
    auto x = t.in(random_floats(size_t(s.rows * s.C), 2, 4));
    auto w = t.in(random_floats(size_t(s.C), 0.5, 1.5));
    auto b = t.in(random_floats(size_t(s.C)));
    auto y = t.out(size_t(s.rows * s.C));
    stow::layernorm_fwd(t.cpu, y.h, x.h, w.h, s.bias ? b.h : nullptr, s.rows, s.C, 1e-5f);
    cuda::layernorm_fwd(t.gpu, y.d, x.d, w.d, s.bias ? b.d : nullptr, s.rows, s.C, 1e-5f);
    // y = xhat w + b with |xhat| up to sqrt(C): the row statistics' rounding, amplified by rstd ~ 2.
    k.expect_case(norm_label(s), close(t.device(y), t.host(y), 2e-5, 2e-5));
  }
}

void check_layernorm_bwd(Check& k) {
  for (const NormShape& s : kNormShapes) {
    Twin& t = k.t;
    t.reset();
    auto x = t.in(random_floats(size_t(s.rows * s.C), 2, 4));
    auto w = t.in(random_floats(size_t(s.C), 0.5, 1.5));
    auto dy = t.in(random_floats(size_t(s.rows * s.C)));
    auto dx = t.out(size_t(s.rows * s.C));
    auto dw = t.out(size_t(s.C));
    auto db = t.out(s.bias ? size_t(s.C) : 0);
    t.workspace(s.rows * 2 * 4);
    stow::layernorm_bwd(t.cpu, dx.h, dw.h, s.bias ? db.h : nullptr, x.h, w.h, dy.h, s.rows, s.C, 1e-5f);
    cuda::layernorm_bwd(t.gpu, dx.d, dw.d, s.bias ? db.d : nullptr, x.d, w.d, dy.d, s.rows, s.C, 1e-5f);
    // dx: rstd (~2) times differences of O(1) means; dw, db: column sums of up to 37 rows.
    k.expect_case(norm_label(s) + " dx", close(t.device(dx), t.host(dx), 5e-5, 5e-5));
    k.expect(norm_label(s) + " dw", close(t.device(dw), t.host(dw), 5e-5, 5e-5));
    k.expect(norm_label(s) + " db", close(t.device(db), t.host(db), 1e-5, 1e-5));
  }
}

struct AttnShape {
  int64_t BH, T, D, group;
};
// One head with T past a warp's tile; grouped (2 query heads per KV head) with D past 32; multi-query
// (every query head on one KV head) with T = 1; T not a multiple of 32 with D = 1; D past 128.
const std::vector<AttnShape> kAttnShapes = {{1, 37, 20, 1}, {4, 9, 33, 2}, {3, 1, 8, 3}, {2, 70, 1, 1}, {2, 3, 129, 2}};

std::string attn_label(const AttnShape& s) {
  return "BH=" + std::to_string(s.BH) + " T=" + std::to_string(s.T) + " D=" + std::to_string(s.D) +
         " group=" + std::to_string(s.group);
}

void check_attention_fwd(Check& k) {
  for (const AttnShape& s : kAttnShapes) {
    Twin& t = k.t;
    t.reset();
    const int64_t kv = s.BH / s.group * s.T * s.D;
    auto q = t.in(random_floats(size_t(s.BH * s.T * s.D), -2, 2));
    auto kk = t.in(random_floats(size_t(kv), -2, 2));
    auto v = t.in(random_floats(size_t(kv)));
    auto y = t.out(size_t(s.BH * s.T * s.D));
    auto lse = t.out(size_t(s.BH * s.T));
    t.workspace(s.T * s.T * 4);  // the CPU kernel's score matrix; the CUDA one needs none
    stow::attention_fwd(t.cpu, y.h, lse.h, q.h, kk.h, v.h, s.BH, s.T, s.D, s.group);
    cuda::attention_fwd(t.gpu, y.d, lse.d, q.d, kk.d, v.d, s.BH, s.T, s.D, s.group);
    // y is a convex combination of v rows (|v| <= 1); lse of scores up to ~4 sqrt(D).
    k.expect_case(attn_label(s) + " y", close(t.device(y), t.host(y), 2e-6, 1e-5));
    k.expect(attn_label(s) + " lse", close(t.device(lse), t.host(lse), 1e-5, 1e-5));
  }
}

void check_attention_bwd(Check& k) {
  for (const AttnShape& s : kAttnShapes) {
    Twin& t = k.t;
    t.reset();
    const int64_t n = s.BH * s.T * s.D, kv = s.BH / s.group * s.T * s.D;
    const Floats qv = random_floats(size_t(n), -2, 2), kvals = random_floats(size_t(kv), -2, 2), vv = random_floats(size_t(kv));
    auto q = t.in(qv), kk = t.in(kvals), v = t.in(vv);
    auto dy = t.in(random_floats(size_t(n)));
    // y and lse from the CPU forward, given to both backwards.
    auto y = t.out(size_t(n));
    auto lse = t.out(size_t(s.BH * s.T));
    t.workspace(s.T * s.T * 4);
    stow::attention_fwd(t.cpu, y.h, lse.h, q.h, kk.h, v.h, s.BH, s.T, s.D, s.group);
    auto y_in = t.in(t.host(y)), lse_in = t.in(t.host(lse));
    auto dq = t.out(size_t(n)), dk = t.out(size_t(kv)), dv = t.out(size_t(kv));
    t.workspace(2 * s.T * s.T * 4);
    stow::attention_bwd(t.cpu, dq.h, dk.h, dv.h, q.h, kk.h, v.h, y_in.h, lse_in.h, dy.h, s.BH, s.T, s.D, s.group);
    cuda::attention_bwd(t.gpu, dq.d, dk.d, dv.d, q.d, kk.d, v.d, y_in.d, lse_in.d, dy.d, s.BH, s.T, s.D, s.group);
    // Sums over up to 70 keys (or group x 70 queries) of products of O(1) terms.
    k.expect_case(attn_label(s) + " dq", close(t.device(dq), t.host(dq), 5e-6, 2e-5));
    k.expect(attn_label(s) + " dk", close(t.device(dk), t.host(dk), 5e-6, 2e-5));
    k.expect(attn_label(s) + " dv", close(t.device(dv), t.host(dv), 5e-6, 2e-5));
  }
}

// Attention beyond causal self-attention: Tk keys (cross-attention when Tk != T), causal or not, with
// or without an additive mask [T, Tk].
struct AttnVariant {
  int64_t BH, T, Tk, D, group;
  bool causal, masked;
};
// Not causal; cross-attention with keys past two warp tiles, grouped heads and D past 32; causal with
// more queries than keys; masked, not causal and causal, with rows that hide a whole first tile of keys
// and rows that hide every key.
const std::vector<AttnVariant> kAttnVariants = {{2, 9, 9, 8, 1, false, false},
                                                {4, 5, 70, 33, 2, false, false},
                                                {2, 40, 7, 4, 2, true, false},
                                                {2, 6, 45, 16, 1, false, true},
                                                {2, 37, 37, 5, 2, true, true}};

std::string variant_label(const AttnVariant& s) {
  return "BH=" + std::to_string(s.BH) + " T=" + std::to_string(s.T) + " Tk=" + std::to_string(s.Tk) + " D=" +
         std::to_string(s.D) + " group=" + std::to_string(s.group) + (s.causal ? " causal" : "") + (s.masked ? " masked" : "");
}

// Row i % 3 of the mask: the first 33 keys hidden, every key hidden, every third key hidden; others finite.
Floats variant_mask(int64_t T, int64_t Tk) {
  Floats m = random_floats(size_t(T * Tk));
  for (int64_t i = 0; i < T; i++)
    for (int64_t j = 0; j < Tk; j++) {
      const bool hidden = i % 3 == 0 ? j < 33 : i % 3 == 1 ? true : j % 3 == 0;
      if (hidden) m[size_t(i * Tk + j)] = -INFINITY;
    }
  return m;
}

void check_attention_variants(Check& k) {
  for (const AttnVariant& s : kAttnVariants) {
    Twin& t = k.t;
    t.reset();
    const int64_t n = s.BH * s.T * s.D, kv = s.BH / s.group * s.Tk * s.D;
    auto q = t.in(random_floats(size_t(n), -2, 2));
    auto kk = t.in(random_floats(size_t(kv), -2, 2));
    auto v = t.in(random_floats(size_t(kv)));
    auto dy = t.in(random_floats(size_t(n)));
    auto mask = t.in(s.masked ? variant_mask(s.T, s.Tk) : Floats(1, 0.0f));
    const float* mh = s.masked ? mask.h : nullptr;
    const float* md = s.masked ? mask.d : nullptr;
    auto y = t.out(size_t(n));
    auto lse = t.out(size_t(s.BH * s.T));
    t.workspace(s.T * s.Tk * 4);
    stow::attention_fwd(t.cpu, y.h, lse.h, q.h, kk.h, v.h, s.BH, s.T, s.D, s.group, s.Tk, s.causal, mh);
    cuda::attention_fwd(t.gpu, y.d, lse.d, q.d, kk.d, v.d, s.BH, s.T, s.D, s.group, s.Tk, s.causal, md);
    k.expect_case(variant_label(s) + " y", close(t.device(y), t.host(y), 2e-6, 1e-5));
    k.expect(variant_label(s) + " lse", close(t.device(lse), t.host(lse), 1e-5, 1e-5));
    // The backward from the CPU forward's y and lse.
    auto y_in = t.in(t.host(y)), lse_in = t.in(t.host(lse));
    auto dq = t.out(size_t(n)), dk = t.out(size_t(kv)), dv = t.out(size_t(kv));
    t.workspace(2 * s.T * s.Tk * 4);
    stow::attention_bwd(t.cpu, dq.h, dk.h, dv.h, q.h, kk.h, v.h, y_in.h, lse_in.h, dy.h, s.BH, s.T, s.D, s.group, s.Tk, s.causal, mh);
    cuda::attention_bwd(t.gpu, dq.d, dk.d, dv.d, q.d, kk.d, v.d, y_in.d, lse_in.d, dy.d, s.BH, s.T, s.D, s.group, s.Tk, s.causal,
                        md);
    k.expect(variant_label(s) + " dq", close(t.device(dq), t.host(dq), 5e-6, 2e-5));
    k.expect(variant_label(s) + " dk", close(t.device(dk), t.host(dk), 5e-6, 2e-5));
    k.expect(variant_label(s) + " dv", close(t.device(dv), t.host(dv), 5e-6, 2e-5));
  }
}

// Masks that broadcast as PyTorch's attn_mask (kernel_math.h's MaskStrides: slab bh is batch bh / heads,
// head bh % heads), and learned ones whose gradient (dmask) the backward sums over the axes they
// broadcast over. Padding per example [B, 1, 1, Tk] hides the last 40 or 45 of 70 keys (across warp
// tiles); a learned bias per
// head [1, H, T, Tk], causal, and per example and head [B, H, T, Tk]; a learned row [B, 1, 1, Tk], whose
// every query adds into one gradient row.
struct MaskVariant {
  int64_t B, heads, T, Tk, D;
  bool causal, learned;
  stow::math::MaskStrides at;  // row -1: Tk
};
const std::vector<MaskVariant> kMaskVariants = {{2, 2, 6, 70, 33, false, false, {2, 70, 0, 0}},
                                                {2, 3, 40, 40, 16, true, true, {3, 0, 40 * 40, -1}},
                                                {2, 2, 5, 37, 8, false, true, {2, 2 * 5 * 37, 5 * 37, -1}},
                                                {3, 2, 9, 9, 4, false, true, {2, 9, 0, 0}}};

void check_attention_masks(Check& k) {
  for (const MaskVariant& s : kMaskVariants) {
    Twin& t = k.t;
    t.reset();
    const int64_t BH = s.B * s.heads, n = BH * s.T * s.D, kv = BH * s.Tk * s.D;
    const stow::math::MaskStrides at{s.at.heads, s.at.batch, s.at.head, s.at.row < 0 ? s.Tk : s.at.row};
    const int64_t entries = at.elements(BH, s.T, s.Tk);
    const std::string label = "B=" + std::to_string(s.B) + " heads=" + std::to_string(s.heads) + " T=" + std::to_string(s.T) +
                              " Tk=" + std::to_string(s.Tk) + " D=" + std::to_string(s.D) + " mask " + std::to_string(entries) +
                              (s.causal ? " causal" : "") + (s.learned ? " learned" : "");
    Floats m = random_floats(size_t(entries), -2, 2);
    if (!s.learned)  // padding: example b's last 40 + 5 b keys hidden
      for (int64_t e = 0; e < entries; e++)
        if (e % s.Tk >= s.Tk - 40 - 5 * (e / s.Tk)) m[size_t(e)] = -INFINITY;
    auto q = t.in(random_floats(size_t(n), -2, 2));
    auto kk = t.in(random_floats(size_t(kv), -2, 2));
    auto v = t.in(random_floats(size_t(kv)));
    auto dy = t.in(random_floats(size_t(n)));
    auto mask = t.in(m);
    auto y = t.out(size_t(n));
    auto lse = t.out(size_t(BH * s.T));
    t.workspace(s.T * s.Tk * 4);
    stow::attention_fwd(t.cpu, y.h, lse.h, q.h, kk.h, v.h, BH, s.T, s.D, 1, s.Tk, s.causal, mask.h, at.heads, at.batch, at.head, at.row);
    cuda::attention_fwd(t.gpu, y.d, lse.d, q.d, kk.d, v.d, BH, s.T, s.D, 1, s.Tk, s.causal, mask.d, at.heads, at.batch, at.head,
                        at.row);
    k.expect_case(label + " y", close(t.device(y), t.host(y), 2e-6, 1e-5));
    k.expect(label + " lse", close(t.device(lse), t.host(lse), 1e-5, 1e-5));
    auto y_in = t.in(t.host(y)), lse_in = t.in(t.host(lse));
    auto dq = t.out(size_t(n)), dk = t.out(size_t(kv)), dv = t.out(size_t(kv)), dmask = t.out(size_t(entries));
    t.workspace(2 * s.T * s.Tk * 4);
    float* dmh = s.learned ? dmask.h : nullptr;
    float* dmd = s.learned ? dmask.d : nullptr;
    stow::attention_bwd(t.cpu, dq.h, dk.h, dv.h, q.h, kk.h, v.h, y_in.h, lse_in.h, dy.h, BH, s.T, s.D, 1, s.Tk, s.causal, mask.h, dmh,
                        at.heads, at.batch, at.head, at.row);
    cuda::attention_bwd(t.gpu, dq.d, dk.d, dv.d, q.d, kk.d, v.d, y_in.d, lse_in.d, dy.d, BH, s.T, s.D, 1, s.Tk, s.causal, mask.d, dmd,
                        at.heads, at.batch, at.head, at.row);
    k.expect(label + " dq", close(t.device(dq), t.host(dq), 5e-6, 2e-5));
    k.expect(label + " dk", close(t.device(dk), t.host(dk), 5e-6, 2e-5));
    k.expect(label + " dv", close(t.device(dv), t.host(dv), 5e-6, 2e-5));
    if (s.learned) k.expect(label + " dmask", close(t.device(dmask), t.host(dmask), 5e-6, 2e-5));
  }
}

// The same hash on both sides: bitwise the CPU's, in place too, at two seeds, steps and probabilities.
void check_dropout(Check& k) {
  for (const int64_t n : {int64_t(1), int64_t(1000), int64_t(4099)}) {
    Twin& t = k.t;
    t.reset();
    auto x = t.in(random_floats(size_t(n), -3, 3));
    auto y = t.out(size_t(n));
    stow::dropout(t.cpu, y.h, x.h, n, 0.3f, 77u, 12);
    cuda::dropout(t.gpu, y.d, x.d, n, 0.3f, 77u, 12);
    k.expect_case("n=" + std::to_string(n), bitwise(t.device(y), t.host(y)));
    auto z = t.inout(random_floats(size_t(n), -3, 3));
    stow::dropout(t.cpu, z.h, z.h, n, 0.6f, 4294967295u, 1);
    cuda::dropout(t.gpu, z.d, z.d, n, 0.6f, 4294967295u, 1);
    k.expect("n=" + std::to_string(n) + " in place", bitwise(t.device(z), t.host(z)));
  }
}

struct CeShape {
  int64_t N, V;
};
// V past one block of 256 with a remainder; V below a warp; N = 0 (loss 0, no gradient rows).
const std::vector<CeShape> kCeShapes = {{5, 300}, {1, 7}, {40, 33}, {0, 9}};

Ints targets_for(int64_t N, int64_t V) {
  Ints t = random_ids(size_t(N), int32_t(V));
  if (N > 1) t[0] = 0, t[1] = int32_t(V - 1);  // the first and last columns
  return t;
}

void check_cross_entropy_fwd(Check& k) {
  for (const CeShape& s : kCeShapes) {
    Twin& t = k.t;
    t.reset();
    auto logits = t.in(random_floats(size_t(s.N * s.V), -4, 4));
    auto targets = t.in(targets_for(s.N, s.V));
    auto loss = t.out(1);
    stow::cross_entropy_fwd(t.cpu, loss.h, logits.h, targets.h, s.N, s.V);
    cuda::cross_entropy_fwd(t.gpu, loss.d, logits.d, targets.d, s.N, s.V);
    // A mean of row losses ~ log V, each an fp32 sum of V exponentials.
    k.expect_case("N=" + std::to_string(s.N) + " V=" + std::to_string(s.V), close(t.device(loss), t.host(loss), 1e-6, 2e-6));
  }
}

void check_cross_entropy_bwd(Check& k) {
  for (const CeShape& s : kCeShapes)
    for (bool in_place : {false, true}) {
      Twin& t = k.t;
      t.reset();
      const Floats lv = random_floats(size_t(s.N * s.V), -4, 4);
      auto logits = in_place ? t.inout(lv) : t.in(lv);
      auto targets = t.in(targets_for(s.N, s.V));
      auto dloss = t.in(Floats{0.7f});
      // dlogits may be placed over the logits.
      auto dlogits = in_place ? logits : t.out(size_t(s.N * s.V));
      stow::cross_entropy_bwd(t.cpu, dlogits.h, logits.h, targets.h, dloss.h, s.N, s.V);
      cuda::cross_entropy_bwd(t.gpu, dlogits.d, logits.d, targets.d, dloss.d, s.N, s.V);
      // dloss / N times probabilities whose sum of exps differs by reordering only.
      k.expect_case("N=" + std::to_string(s.N) + " V=" + std::to_string(s.V) + (in_place ? " in place" : ""),
                    close(t.device(dlogits), t.host(dlogits), 1e-7, 1e-5));
    }
}

struct HeadShape {
  int64_t N, C, V, rows, cols;
};
// Several row and column tiles, each with a remainder (10 = 4 + 4 + 2 rows, 50 = 16 x 3 + 2 columns);
// one tile holding everything; a single row; N = 0.
const std::vector<HeadShape> kHeadShapes = {{10, 24, 50, 4, 16}, {7, 33, 19, 8, 32}, {1, 5, 40, 1, 7}, {0, 6, 9, 4, 4}};

std::string head_label(const HeadShape& s, bool w_vc, cuda::Precision p) {
  return std::string(p == cuda::BF16 ? "bf16 " : "fp32 ") + "N=" + std::to_string(s.N) + " C=" + std::to_string(s.C) +
         " V=" + std::to_string(s.V) + " tile " + std::to_string(s.rows) + "x" + std::to_string(s.cols) +
         (w_vc ? " W[V,C]" : " W[C,V]");
}

void check_linear_cross_entropy_fwd(Check& k) {
  for (const cuda::Precision p : {cuda::FP32, cuda::BF16})
    for (const HeadShape& s : kHeadShapes)
      for (bool w_vc : {true, false}) {
        Twin& t = k.t;
        t.reset();
        const Floats xv = random_floats(size_t(s.N * s.C), -2, 2), wv = random_floats(size_t(s.V * s.C));
        const bool bf = p == cuda::BF16;
        auto x = t.in(xv), w = t.in(wv);
        auto x_ref = t.in(bf ? rounded_bf16(xv) : xv), w_ref = t.in(bf ? rounded_bf16(wv) : wv);
        auto targets = t.in(targets_for(s.N, s.V));
        auto loss = t.out(1);
        auto lse = t.out(size_t(s.N));
        t.workspace((s.rows * s.cols + 2 * s.rows) * 4);
        stow::linear_cross_entropy_fwd(t.cpu, loss.h, lse.h, x_ref.h, w_ref.h, targets.h, s.N, s.C, s.V, w_vc, s.rows, s.cols);
        cuda::linear_cross_entropy_fwd(t.gpu, loss.d, lse.d, x.d, w.d, targets.d, s.N, s.C, s.V, w_vc, s.rows, s.cols, p);
        // Logits are dot products of length C <= 33 of terms <= 2 (error <= 2 C u 66 ~ 3e-4 at worst,
        // ~1e-6 in practice), then a log-sum-exp of up to 50 terms.
        k.expect_case(head_label(s, w_vc, p) + " loss", close(t.device(loss), t.host(loss), 1e-5, 1e-5));
        k.expect(head_label(s, w_vc, p) + " lse", close(t.device(lse), t.host(lse), 1e-5, 1e-5));
      }
}

void check_linear_cross_entropy_bwd(Check& k) {
  for (const cuda::Precision p : {cuda::FP32, cuda::BF16})
    for (const HeadShape& s : kHeadShapes)
      for (bool w_vc : {true, false}) {
        Twin& t = k.t;
        t.reset();
        const Floats xv = random_floats(size_t(s.N * s.C), -2, 2), wv = random_floats(size_t(s.V * s.C));
        const bool bf = p == cuda::BF16;
        const Floats xr = bf ? rounded_bf16(xv) : xv, wr = bf ? rounded_bf16(wv) : wv;
        auto x = t.in(xv), w = t.in(wv), x_ref = t.in(xr), w_ref = t.in(wr);
        const Ints tv = targets_for(s.N, s.V);
        auto targets = t.in(tv);
        auto dloss = t.in(Floats{1.3f});
        // lse from the CPU forward (on the operands as the product sees them), given to both.
        auto loss = t.out(1), lse = t.out(size_t(s.N));
        t.workspace((s.rows * s.cols + 2 * s.rows) * 4);
        stow::linear_cross_entropy_fwd(t.cpu, loss.h, lse.h, x_ref.h, w_ref.h, targets.h, s.N, s.C, s.V, w_vc, s.rows, s.cols);
        const Floats lse_v = t.host(lse);
        auto lse_in = t.in(lse_v);
        auto dx = t.out(size_t(s.N * s.C)), dw = t.out(size_t(s.V * s.C));
        t.workspace(s.rows * s.cols * 4);
        stow::linear_cross_entropy_bwd(t.cpu, dx.h, dw.h, x_ref.h, w_ref.h, targets.h, lse_in.h, dloss.h, s.N, s.C, s.V, w_vc,
                                       s.rows, s.cols);
        cuda::linear_cross_entropy_bwd(t.gpu, dx.d, dw.d, x.d, w.d, targets.d, lse_in.d, dloss.d, s.N, s.C, s.V, w_vc, s.rows,
                                       s.cols, p);
        // fp32: dlogits = dloss/N (p - onehot) with p from logits that differ by reordering; dx and dW
        // are sums of up to 50 (or 10) such terms times O(1) operands.
        // bf16: the CUDA backend also rounds dlogits to bf16 as an operand of the two products (the CPU
        // reference does not), a relative error up to 2^-8 per term (bf16 keeps 8 significant bits),
        // which a single-row dW meets almost exactly: the tolerance adds twice that, 2^-7 of the sum of
        // the terms' magnitudes, computed here in double.
        Vec dx_allowed(size_t(s.N * s.C), 0.0), dw_allowed(size_t(s.V * s.C), 0.0);
        const Floats dxc = t.host(dx), dwc = t.host(dw);
        for (size_t i = 0; i < dx_allowed.size(); i++) dx_allowed[i] = 1e-6 + 1e-4 * std::fabs(double(dxc[i]));
        for (size_t i = 0; i < dw_allowed.size(); i++) dw_allowed[i] = 1e-6 + 1e-4 * std::fabs(double(dwc[i]));
        if (bf) {
          const double f = 1.3 / double(s.N);
          for (int64_t n = 0; n < s.N; n++)
            for (int64_t v = 0; v < s.V; v++) {
              double logit = 0;
              for (int64_t c = 0; c < s.C; c++)
                logit += double(xr[size_t(n * s.C + c)]) * double(wr[size_t(w_vc ? v * s.C + c : c * s.V + v)]);
              const double dl = std::fabs(f * (std::exp(logit - double(lse_v[size_t(n)])) - (tv[size_t(n)] == v ? 1.0 : 0.0)));
              for (int64_t c = 0; c < s.C; c++) {
                const size_t wi = size_t(w_vc ? v * s.C + c : c * s.V + v);
                dx_allowed[size_t(n * s.C + c)] += std::ldexp(dl * std::fabs(double(wr[wi])), -7);
                dw_allowed[wi] += std::ldexp(dl * std::fabs(double(xr[size_t(n * s.C + c)])), -7);
              }
            }
        }
        k.expect_case(head_label(s, w_vc, p) + " dx", within(t.device(dx), dxc, dx_allowed));
        k.expect(head_label(s, w_vc, p) + " dW", within(t.device(dw), dwc, dw_allowed));
      }
}

// ---------------------------------------------------------------------------------------------------
// The optimizer: norms in double (a few ulps of float apart at most), AdamW bitwise.

struct Grads {
  std::vector<Buf<float>> bufs;
  std::vector<const float*> h, d;
  std::vector<int64_t> sizes;
};

// Tensors past the norm kernel's grid-stride (128 x 256), of one element, and empty.
Grads make_grads(Twin& t) {
  Grads g;
  for (int64_t n : {int64_t(40000), int64_t(1), int64_t(0), int64_t(333)}) {
    g.bufs.push_back(t.in(random_floats(size_t(n), -3, 3)));
    g.h.push_back(g.bufs.back().h);
    g.d.push_back(g.bufs.back().d);
    g.sizes.push_back(n);
  }
  return g;
}

void check_grad_norm(Check& k) {
  Twin& t = k.t;
  t.reset();
  Grads g = make_grads(t);
  auto out = t.out(1);
  stow::grad_norm(t.cpu, out.h, g.h.data(), g.sizes.data(), int64_t(g.sizes.size()));
  const float returned = cuda::grad_norm(t.gpu, out.d, g.d.data(), g.sizes.data(), int64_t(g.sizes.size()));
  // Both sum the squares in double (in different orders) and round the root to float once.
  k.expect_case("4 tensors", close(t.device(out), t.host(out), 0, 1e-7));
  k.expect("returned value", close({returned}, t.host(out), 0, 1e-7));
  t.reset();
  auto zero = t.out(1);
  stow::grad_norm(t.cpu, zero.h, nullptr, nullptr, 0);
  cuda::grad_norm(t.gpu, zero.d, nullptr, nullptr, 0);
  k.expect_case("no tensors", bitwise(t.device(zero), t.host(zero)));
}

void check_sum_squares(Check& k) {
  Twin& t = k.t;
  t.reset();
  Grads g = make_grads(t);
  auto out = t.out(1);
  stow::sum_squares(t.cpu, out.h, g.h.data(), g.sizes.data(), int64_t(g.sizes.size()));
  cuda::sum_squares(t.gpu, out.d, g.d.data(), g.sizes.data(), int64_t(g.sizes.size()));
  k.expect_case("4 tensors", close(t.device(out), t.host(out), 0, 1e-7));
}

void check_norm_from_squares(Check& k) {
  Twin& t = k.t;
  t.reset();
  auto p0 = t.in(Floats{2.25f}), p1 = t.in(Floats{13.5f}), p2 = t.in(Floats{0.0f});
  const float* ph[] = {p0.h, p1.h, p2.h};
  const float* pd[] = {p0.d, p1.d, p2.d};
  auto out = t.out(1);
  stow::norm_from_squares(t.cpu, out.h, ph, 3);
  const float returned = cuda::norm_from_squares(t.gpu, out.d, pd, 3);
  k.expect_case("3 parts", bitwise(t.device(out), t.host(out)));
  k.expect("returned value", bitwise({returned}, t.host(out)));
}

void check_adamw(Check& k) {
  const AdamHyper h{1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 3};
  for (int64_t n : {int64_t(0), int64_t(1), int64_t(1000)})
    for (bool decay : {false, true}) {
      Twin& t = k.t;
      t.reset();
      auto g = t.in(random_floats(size_t(n), -0.1f, 0.1f));
      auto p = t.inout(random_floats(size_t(n)));
      auto m = t.inout(random_floats(size_t(n), -0.01f, 0.01f));
      auto v = t.inout(random_floats(size_t(n), 0, 1e-4f));
      stow::adamw(t.cpu, p.h, g.h, m.h, v.h, n, h, 0.7f, decay);
      cuda::adamw(t.gpu, p.d, g.d, m.d, v.d, n, h, 0.7f, decay);
      const std::string label = "n=" + std::to_string(n) + (decay ? " decay" : "");
      k.expect_case(label + " p", bitwise(t.device(p), t.host(p)));
      k.expect(label + " m", bitwise(t.device(m), t.host(m)));
      k.expect(label + " v", bitwise(t.device(v), t.host(v)));
    }
}

// The offload schedule's kernels: a gradient goes to the host region (d2h_async), AdamW runs on the
// host once it has arrived (adamw_on_host), the parameter comes back (h2d_async), compute waits for it
// (wait_transfer) and scales it; drain_transfers ends the program. Against the CPU's adamw and scale.
void check_offload(Check& k) {
  Twin& t = k.t;
  t.reset();
  const int64_t n = 700;
  const AdamHyper h{1e-2f, 0.9f, 0.99f, 1e-8f, 0.01f, 2};
  const Floats p0 = random_floats(size_t(n)), g0 = random_floats(size_t(n)), m0 = random_floats(size_t(n), -0.1f, 0.1f),
               v0 = random_floats(size_t(n), 0, 0.01f);
  // The host region: pinned, as the CUDA device pins it, laid out p, g, m, v.
  void* region = nullptr;
  cuda_ok(cudaMallocHost(&region, size_t(4 * n * 4)), "cudaMallocHost");
  float* hp = static_cast<float*>(region);
  float *hg = hp + n, *hm = hp + 2 * n, *hv = hp + 3 * n;
  std::memcpy(hp, p0.data(), size_t(n) * 4);
  std::memset(hg, 0, size_t(n) * 4);
  std::memcpy(hm, m0.data(), size_t(n) * 4);
  std::memcpy(hv, v0.data(), size_t(n) * 4);
  t.gpu.host = static_cast<uint8_t*>(region);
  t.gpu.host_bytes = 4 * n * 4;
  auto g = t.in(g0);
  auto p = t.out(size_t(n));
  auto scaled = t.out(size_t(n));
  std::string detail;
  try {
    const int64_t sent = cuda::d2h_async(t.gpu, hg, g.d, n);
    cuda::adamw_on_host(t.gpu, sent, hp, hg, hm, hv, n, h, 0.5f, true);
    cuda::drain_transfers(t.gpu);  // the host AdamW is done
    const int64_t back = cuda::h2d_async(t.gpu, p.d, hp, n);
    cuda::wait_transfer(t.gpu, back);
    cuda::scale(t.gpu, scaled.d, p.d, 2.0f, n);
    cuda::drain_transfers(t.gpu);
  } catch (const std::exception& e) {
    detail = std::string("threw: ") + e.what();
  }
  // The reference: the CPU's AdamW on copies, then the CPU's scale.
  Floats rp = p0, rm = m0, rv = v0, rs = Floats(size_t(n));
  Ctx host = t.cpu;
  stow::adamw(host, rp.data(), g0.data(), rm.data(), rv.data(), n, h, 0.5f, true);
  for (int64_t i = 0; i < n; i++) rs[size_t(i)] = rp[size_t(i)] * 2.0f;
  k.expect("d2h_async + adamw_on_host", cat(detail, bitwise(Floats(hp, hp + n), rp)));
  k.expect("adamw_on_host m, v", cat(bitwise(Floats(hm, hm + n), rm), bitwise(Floats(hv, hv + n), rv)));
  k.expect("h2d_async + wait_transfer", bitwise(t.device(p), rp));
  k.expect_case("scale after wait_transfer", bitwise(t.device(scaled), rs));
  t.gpu.host = nullptr;
  t.gpu.host_bytes = 0;
  cuda_ok(cudaFreeHost(region), "cudaFreeHost");
}

// ---------------------------------------------------------------------------------------------------
// Tensor parallelism. The collectives at one rank (the CPU side on comm_single.cpp's communicator; the
// CUDA side calls no communicator at one rank): copies, and the same call and byte counts. Under --tp 2
// the lead's training test covers NCCL. The vocabulary-parallel kernels need no communicator, so they
// run as a middle rank (with the vocabulary's padding on the last) and as a rank holding only padding.

void set_rank(Twin& t, int rank, int ranks) {
  for (Ctx* c : {&t.cpu, &t.gpu}) {
    c->rank = rank;
    c->ranks = ranks;
    c->comm = ranks == 1 ? &process_comm() : nullptr;
  }
}

std::string counts(const Twin& t) {
  if (t.gpu.comm_calls == t.cpu.comm_calls && t.gpu.comm_bytes == t.cpu.comm_bytes) return "";
  return "counted " + std::to_string(t.gpu.comm_calls) + " calls of " + std::to_string(t.gpu.comm_bytes) + " bytes, the CPU " +
         std::to_string(t.cpu.comm_calls) + " of " + std::to_string(t.cpu.comm_bytes);
}

void check_all_reduce(Check& k) {
  for (bool in_place : {false, true})
    for (bool max : {false, true}) {
      Twin& t = k.t;
      t.reset();
      set_rank(t, 0, 1);
      auto in = in_place ? t.inout(random_floats(301)) : t.in(random_floats(301));
      auto out = in_place ? in : t.out(301);
      stow::all_reduce(t.cpu, out.h, in.h, 301, max);
      cuda::all_reduce(t.gpu, out.d, in.d, 301, max);
      k.expect_case(std::string(max ? "max" : "sum") + (in_place ? " in place" : ""), cat(bitwise(t.device(out), t.host(out)), counts(t)));
    }
}

// At one data-parallel rank the mean is a copy (scaled by 1): the same bits and counts as the CPU's.
void check_dp_all_reduce(Check& k) {
  for (bool in_place : {false, true}) {
    Twin& t = k.t;
    t.reset();
    set_rank(t, 0, 1);
    t.cpu.dp_comm = &process_comm();
    auto in = in_place ? t.inout(random_floats(301)) : t.in(random_floats(301));
    auto out = in_place ? in : t.out(301);
    stow::dp_all_reduce(t.cpu, out.h, in.h, 301, true);
    cuda::dp_all_reduce(t.gpu, out.d, in.d, 301, true);
    t.cpu.dp_comm = nullptr;
    k.expect_case(in_place ? "in place" : "out of place", cat(bitwise(t.device(out), t.host(out)), counts(t)));
  }
}

void check_all_gather(Check& k) {
  for (int64_t rows : {int64_t(1), int64_t(3)}) {
    Twin& t = k.t;
    t.reset();
    set_rank(t, 0, 1);
    auto in = t.in(random_floats(size_t(rows * 37)));
    auto out = t.out(size_t(rows * 37));
    if (rows > 1) t.workspace(rows * 37 * 4);
    stow::all_gather(t.cpu, out.h, in.h, rows, 37);
    cuda::all_gather(t.gpu, out.d, in.d, rows, 37);
    k.expect_case("rows=" + std::to_string(rows), cat(bitwise(t.device(out), t.host(out)), counts(t)));
  }
}

void check_reduce_scatter(Check& k) {
  for (int64_t rows : {int64_t(1), int64_t(3)}) {
    Twin& t = k.t;
    t.reset();
    set_rank(t, 0, 1);
    auto in = t.in(random_floats(size_t(rows * 37)));
    auto out = t.out(size_t(rows * 37));
    if (rows > 1) t.workspace(rows * 37 * 4);
    stow::reduce_scatter(t.cpu, out.h, in.h, rows, 37);
    cuda::reduce_scatter(t.gpu, out.d, in.d, rows, 37);
    k.expect_case("rows=" + std::to_string(rows), cat(bitwise(t.device(out), t.host(out)), counts(t)));
  }
}

void check_broadcast(Check& k) {
  Twin& t = k.t;
  t.reset();
  set_rank(t, 0, 1);
  auto buf = t.inout(random_floats(45));
  stow::broadcast(t.cpu, buf.h, 45 * 4, 0);
  cuda::broadcast(t.gpu, buf.d, 45 * 4, 0);
  k.expect_case("45 floats", cat(bitwise(t.device(buf), t.host(buf)), counts(t)));
}

void check_shard_slice(Check& k) {
  struct Case {
    int rank, ranks;
    int64_t rows, cols;
  };
  for (Case s : {Case{1, 3, 7, 5}, Case{2, 3, 300, 1}, Case{0, 1, 4, 9}, Case{1, 2, 0, 3}}) {
    Twin& t = k.t;
    t.reset();
    set_rank(t, s.rank, s.ranks);
    auto in = t.in(random_floats(size_t(s.rows * s.ranks * s.cols)));
    auto out = t.out(size_t(s.rows * s.cols));
    stow::shard_slice(t.cpu, out.h, in.h, s.rows, s.cols);
    cuda::shard_slice(t.gpu, out.d, in.d, s.rows, s.cols);
    k.expect_case("rank " + std::to_string(s.rank) + " of " + std::to_string(s.ranks) + " rows=" + std::to_string(s.rows) +
                      " cols=" + std::to_string(s.cols),
                  bitwise(t.device(out), t.host(out)));
  }
}

// A vocabulary of 19 over ranks of 7 rows: rank 1 holds 7 real rows, rank 2 holds 5 and 2 of padding;
// at 4 ranks, rank 3 holds only padding.
struct VpCase {
  int rank, ranks;
  int64_t V, vocab;
};
const std::vector<VpCase> kVpCases = {{1, 3, 7, 19}, {2, 3, 7, 19}, {3, 4, 7, 19}, {0, 1, 19, 19}};

std::string vp_label(const VpCase& s, int64_t N) {
  return "rank " + std::to_string(s.rank) + " of " + std::to_string(s.ranks) + " V=" + std::to_string(s.V) +
         " vocab=" + std::to_string(s.vocab) + " N=" + std::to_string(N);
}

void check_embedding_vp_fwd(Check& k) {
  for (const VpCase& s : kVpCases)
    for (int64_t N : {int64_t(0), int64_t(40)}) {
      Twin& t = k.t;
      t.reset();
      set_rank(t, s.rank, s.ranks);
      const int64_t C = 45;
      auto table = t.in(random_floats(size_t(s.V * C)));
      auto idx = t.in(random_ids(size_t(N), int32_t(s.vocab)));
      auto out = t.out(size_t(N * C));
      stow::embedding_vp_fwd(t.cpu, out.h, table.h, idx.h, N, C, s.V, s.vocab);
      cuda::embedding_vp_fwd(t.gpu, out.d, table.d, idx.d, N, C, s.V, s.vocab);
      k.expect_case(vp_label(s, N), bitwise(t.device(out), t.host(out)));
    }
}

void check_embedding_vp_bwd(Check& k) {
  for (const VpCase& s : kVpCases)
    for (int64_t N : {int64_t(0), int64_t(300)}) {
      Twin& t = k.t;
      t.reset();
      set_rank(t, s.rank, s.ranks);
      const int64_t C = 5;
      auto idx = t.in(random_ids(size_t(N), int32_t(s.vocab)));
      auto dy = t.in(random_floats(size_t(N * C)));
      auto dtable = t.out(size_t(s.V * C));
      stow::embedding_vp_bwd(t.cpu, dtable.h, idx.h, dy.h, N, C, s.V);
      cuda::embedding_vp_bwd(t.gpu, dtable.d, idx.d, dy.d, N, C, s.V);
      k.expect_case(vp_label(s, N), bitwise(t.device(dtable), t.host(dtable)));
    }
}

// The logits of this rank's columns, with the padding columns (at or past vocab) set to a huge value
// that any use of them would show.
Floats vp_logits(const VpCase& s, int64_t N) {
  Floats l = random_floats(size_t(N * s.V), -4, 4);
  const int64_t valid = std::max<int64_t>(0, std::min<int64_t>(s.V, s.vocab - int64_t(s.rank) * s.V));
  for (int64_t n = 0; n < N; n++)
    for (int64_t j = valid; j < s.V; j++) l[size_t(n * s.V + j)] = 1e30f;
  return l;
}

void check_cross_entropy_vp_max(Check& k) {
  for (const VpCase& s : kVpCases)
    for (int64_t N : {int64_t(0), int64_t(5)}) {
      Twin& t = k.t;
      t.reset();
      set_rank(t, s.rank, s.ranks);
      auto logits = t.in(vp_logits(s, N));
      auto max = t.out(size_t(N));
      stow::cross_entropy_vp_max(t.cpu, max.h, logits.h, N, s.V, s.vocab);
      cuda::cross_entropy_vp_max(t.gpu, max.d, logits.d, N, s.V, s.vocab);
      k.expect_case(vp_label(s, N), bitwise(t.device(max), t.host(max)));  // a max is the same in any order
    }
}

// Inputs for the stages after the max: this rank's logits and targets over the whole vocabulary, and
// the max and sums as the all-reduces would leave them (the CPU's, so both sides get the same).
struct VpInputs {
  Buf<float> logits, max, sums;
  Buf<int32_t> targets;
};

// The logits count as an output when the kernel writes over them (logits_out).
VpInputs vp_inputs(Twin& t, const VpCase& s, int64_t N, bool logits_out = false) {
  VpInputs in{};
  in.logits = logits_out ? t.inout(vp_logits(s, N)) : t.in(vp_logits(s, N));
  in.targets = t.in(random_ids(size_t(N), int32_t(s.vocab)));
  const Floats nan(size_t(2 * N), std::numeric_limits<float>::quiet_NaN());
  auto max = t.in(Floats(nan.begin(), nan.begin() + N));
  stow::cross_entropy_vp_max(t.cpu, max.h, in.logits.h, N, s.V, s.vocab);
  Floats m = t.host(max);
  for (float& x : m) x = std::isinf(x) ? 0.0f : x;  // a rank with no columns: the other ranks' max
  in.max = t.in(m);
  auto sums = t.in(nan);
  stow::cross_entropy_vp_sums(t.cpu, sums.h, in.logits.h, in.targets.h, in.max.h, N, s.V, s.vocab);
  Floats sv = t.host(sums);
  for (int64_t n = 0; n < N; n++) sv[size_t(n)] += 1.5f;  // the other ranks' share keeps log(sum) finite
  in.sums = t.in(sv);
  return in;
}

void check_cross_entropy_vp_sums(Check& k) {
  for (const VpCase& s : kVpCases)
    for (int64_t N : {int64_t(0), int64_t(5)}) {
      Twin& t = k.t;
      t.reset();
      set_rank(t, s.rank, s.ranks);
      VpInputs in = vp_inputs(t, s, N);
      auto sums = t.out(size_t(2 * N));
      stow::cross_entropy_vp_sums(t.cpu, sums.h, in.logits.h, in.targets.h, in.max.h, N, s.V, s.vocab);
      cuda::cross_entropy_vp_sums(t.gpu, sums.d, in.logits.d, in.targets.d, in.max.d, N, s.V, s.vocab);
      const Floats got = t.device(sums), want = t.host(sums);
      // The sums of up to 19 exponentials <= 1 in another order; the target logits are copies.
      k.expect_case(vp_label(s, N) + " sums", close(Floats(got.begin(), got.begin() + N), Floats(want.begin(), want.begin() + N), 1e-6, 2e-6));
      k.expect(vp_label(s, N) + " target logits", bitwise(Floats(got.begin() + N, got.end()), Floats(want.begin() + N, want.end())));
    }
}

void check_cross_entropy_vp(Check& k) {
  for (const VpCase& s : kVpCases)
    for (int64_t N : {int64_t(0), int64_t(1), int64_t(300)}) {
      Twin& t = k.t;
      t.reset();
      set_rank(t, s.rank, s.ranks);
      VpInputs in = vp_inputs(t, s, N);
      auto loss = t.out(1);
      stow::cross_entropy_vp(t.cpu, loss.h, in.max.h, in.sums.h, N);
      cuda::cross_entropy_vp(t.gpu, loss.d, in.max.d, in.sums.d, N);
      // The same row losses summed in double in another order, then rounded to float once.
      k.expect_case(vp_label(s, N), close(t.device(loss), t.host(loss), 1e-7, 1e-7));
    }
}

void check_cross_entropy_vp_bwd(Check& k) {
  for (const VpCase& s : kVpCases)
    for (int64_t N : {int64_t(0), int64_t(5)})
      for (bool in_place : {false, true}) {
        Twin& t = k.t;
        t.reset();
        set_rank(t, s.rank, s.ranks);
        VpInputs in = vp_inputs(t, s, N, in_place);
        auto dloss = t.in(Floats{0.9f});
        auto dlogits = in_place ? in.logits : t.out(size_t(N * s.V));
        stow::cross_entropy_vp_bwd(t.cpu, dlogits.h, in.logits.h, in.targets.h, in.max.h, in.sums.h, dloss.h, N, s.V, s.vocab);
        cuda::cross_entropy_vp_bwd(t.gpu, dlogits.d, in.logits.d, in.targets.d, in.max.d, in.sums.d, dloss.d, N, s.V, s.vocab);
        // Given the same max and sums, each element is the same formula (kernel_math.h).
        k.expect_case(vp_label(s, N) + (in_place ? " in place" : ""), bitwise(t.device(dlogits), t.host(dlogits)));
      }
}

// The elementwise math and last-axis reductions, every function number (kernel_math.h's enums), on
// inputs where each is defined (positive: log, sqrt and their kin take |x| + 0.25). The formulas are
// shared, so each element is the same bits; a reduction row is summed in index order on both.
void check_unary(Check& k) {
  for (int32_t fn = 0; fn <= stow::math::kPow; fn++)
    for (bool bwd : {false, true}) {
      Twin& t = k.t;
      t.reset();
      const int64_t n = 1001;
      Floats xs = random_floats(size_t(n), -4, 4);
      if (fn == stow::math::kLog || fn == stow::math::kSqrt || fn == stow::math::kRsqrt || fn == stow::math::kReciprocal || fn == stow::math::kPow)
        for (float& v : xs) v = std::fabs(v) + 0.25f;
      auto x = t.in(xs);
      auto dy = t.in(random_floats(size_t(n), -2, 2));
      auto y = t.out(size_t(n));
      if (bwd) {
        stow::unary_bwd(t.cpu, y.h, x.h, dy.h, n, fn, 1.5f);
        cuda::unary_bwd(t.gpu, y.d, x.d, dy.d, n, fn, 1.5f);
      } else {
        stow::unary(t.cpu, y.h, x.h, n, fn, 1.5f);
        cuda::unary(t.gpu, y.d, x.d, n, fn, 1.5f);
      }
      k.expect_case(std::string(bwd ? "unary_bwd" : "unary") + " fn=" + std::to_string(fn), bitwise(t.device(y), t.host(y)));
    }
}

void check_binary_math(Check& k) {
  struct Shape {
    int64_t n, inner, nb;
  };
  for (int32_t fn = 0; fn < stow::math::kBinaryCount; fn++)
    for (Shape s : {Shape{1001, 1, 7 * 11}, Shape{1001, 7, 11}, Shape{1001, 1, 1001}})
      for (int32_t side : {-1, 0, 1}) {
        Twin& t = k.t;
        t.reset();
        auto a = t.in(random_floats(size_t(s.n), 0.25f, 2));
        auto b = t.in(random_floats(size_t(s.nb), 0.25f, 2));
        auto dy = t.in(random_floats(size_t(s.n), -2, 2));
        auto out = t.out(size_t(s.n));
        if (side < 0) {
          stow::binary(t.cpu, out.h, a.h, b.h, s.n, s.inner, s.nb, fn);
          cuda::binary(t.gpu, out.d, a.d, b.d, s.n, s.inner, s.nb, fn);
        } else {
          stow::binary_bwd(t.cpu, out.h, a.h, b.h, dy.h, s.n, s.inner, s.nb, fn, side);
          cuda::binary_bwd(t.gpu, out.d, a.d, b.d, dy.d, s.n, s.inner, s.nb, fn, side);
        }
        k.expect_case("fn=" + std::to_string(fn) + " inner=" + std::to_string(s.inner) + " nb=" + std::to_string(s.nb) +
                          " side=" + std::to_string(side),
                      bitwise(t.device(out), t.host(out)));
      }
}

void check_reduce_last(Check& k) {
  for (int32_t fn = 0; fn <= stow::math::kMax; fn++)
    for (bool bwd : {false, true}) {
      Twin& t = k.t;
      t.reset();
      const int64_t rows = 37, C = 29;
      auto x = t.in(random_floats(size_t(rows * C), -3, 3));
      auto y = t.out(size_t(rows));
      stow::reduce_last(t.cpu, y.h, x.h, rows, C, fn);
      cuda::reduce_last(t.gpu, y.d, x.d, rows, C, fn);
      const std::string label = std::string(bwd ? "reduce_last_bwd" : "reduce_last") + " fn=" + std::to_string(fn);
      if (!bwd) {
        k.expect_case(label, bitwise(t.device(y), t.host(y)));
        continue;
      }
      auto dy = t.in(random_floats(size_t(rows), -2, 2));
      auto dx = t.out(size_t(rows * C));
      stow::reduce_last_bwd(t.cpu, dx.h, x.h, y.h, dy.h, rows, C, fn);
      cuda::reduce_last_bwd(t.gpu, dx.d, x.d, y.d, dy.d, rows, C, fn);
      k.expect_case(label, bitwise(t.device(dx), t.host(dx)));
    }
}

// Data movement along any axis (core/move_index.h's index math on both sides): every element the same
// bits, the sums of expand_bwd and the scatter-adds of take_axis_bwd included (added in index order).
void check_pad(Check& k) {
  struct Shape {
    std::vector<int64_t> in, before, after;
  };
  const std::vector<Shape> shapes = {{{3, 5, 4}, {0, 2, 1}, {0, 1, 3}}, {{6, 7, 2}, {0, -2, 0}, {0, 1, -1}}, {{1001}, {3}, {4}}};
  for (const Shape& s : shapes) {
    Twin& t = k.t;
    t.reset();
    std::vector<int64_t> out;
    int64_t n_in = 1, n_out = 1;
    for (size_t d = 0; d < s.in.size(); d++) {
      out.push_back(s.in[d] + s.before[d] + s.after[d]);
      n_in *= s.in[d];
      n_out *= out[d];
    }
    auto in = t.in(random_floats(size_t(n_in)));
    auto y = t.out(size_t(n_out));
    const int rank = int(s.in.size());
    stow::pad(t.cpu, y.h, in.h, rank, s.in.data(), s.before.data(), out.data(), 0x3f000000u);
    cuda::pad(t.gpu, y.d, in.d, rank, s.in.data(), s.before.data(), out.data(), 0x3f000000u);
    k.expect_case("pad of rank " + std::to_string(rank) + " to " + std::to_string(n_out), bitwise(t.device(y), t.host(y)));
  }
}

void check_expand(Check& k) {
  struct Shape {
    std::vector<int64_t> small, big;
  };
  const std::vector<Shape> shapes = {{{3, 1, 4}, {3, 5, 4}}, {{1, 7, 1, 3}, {6, 7, 5, 3}}, {{1}, {1001}}};
  for (const Shape& s : shapes)
    for (bool bwd : {false, true}) {
      Twin& t = k.t;
      t.reset();
      int64_t n_small = 1, n_big = 1;
      for (size_t d = 0; d < s.big.size(); d++) n_small *= s.small[d], n_big *= s.big[d];
      const int rank = int(s.big.size());
      const std::string label = std::string(bwd ? "expand_bwd" : "expand") + " to " + std::to_string(n_big);
      if (bwd) {
        auto dy = t.in(random_floats(size_t(n_big)));
        auto dx = t.out(size_t(n_small));
        stow::expand_bwd(t.cpu, dx.h, dy.h, rank, s.small.data(), s.big.data());
        cuda::expand_bwd(t.gpu, dx.d, dy.d, rank, s.small.data(), s.big.data());
        k.expect_case(label, bitwise(t.device(dx), t.host(dx)));
      } else {
        auto x = t.in(random_floats(size_t(n_small)));
        auto y = t.out(size_t(n_big));
        stow::expand(t.cpu, y.h, x.h, rank, s.small.data(), s.big.data());
        cuda::expand(t.gpu, y.d, x.d, rank, s.small.data(), s.big.data());
        k.expect_case(label, bitwise(t.device(y), t.host(y)));
      }
    }
}

// index_select (one index list) and gather (an index per element), forward and scatter-add backward,
// with repeated indices.
void check_take_axis(Check& k) {
  struct Shape {
    int64_t outer, D, n, inner;
  };
  for (Shape s : {Shape{3, 5, 7, 4}, Shape{1, 9, 300, 1}, Shape{37, 4, 2, 1}})
    for (bool per_element : {false, true})
      for (bool bwd : {false, true}) {
        Twin& t = k.t;
        t.reset();
        auto idx = t.in(random_ids(size_t(per_element ? s.outer * s.n * s.inner : s.n), int32_t(s.D)));
        const std::string label = std::string(bwd ? "take_axis_bwd" : "take_axis") + (per_element ? " gather" : " index_select") +
                                  " outer=" + std::to_string(s.outer) + " D=" + std::to_string(s.D) + " n=" + std::to_string(s.n) +
                                  " inner=" + std::to_string(s.inner);
        if (bwd) {
          auto dy = t.in(random_floats(size_t(s.outer * s.n * s.inner)));
          auto dx = t.out(size_t(s.outer * s.D * s.inner));
          stow::take_axis_bwd(t.cpu, dx.h, idx.h, dy.h, s.outer, s.D, s.n, s.inner, per_element);
          cuda::take_axis_bwd(t.gpu, dx.d, idx.d, dy.d, s.outer, s.D, s.n, s.inner, per_element);
          k.expect_case(label, bitwise(t.device(dx), t.host(dx)));
        } else {
          auto x = t.in(random_floats(size_t(s.outer * s.D * s.inner)));
          auto y = t.out(size_t(s.outer * s.n * s.inner));
          stow::take_axis(t.cpu, y.h, x.h, idx.h, s.outer, s.D, s.n, s.inner, per_element);
          cuda::take_axis(t.gpu, y.d, x.d, idx.d, s.outer, s.D, s.n, s.inner, per_element);
          k.expect_case(label, bitwise(t.device(y), t.host(y)));
        }
      }
}

// where with each operand broadcast in turn (binary's (inner, n) pairs), on a mask with both values.
void check_where(Check& k) {
  struct Fit {
    int64_t inner, n;
  };
  const int64_t n = 35 * 29;
  for (const auto& fits : std::vector<std::vector<Fit>>{{{1, n}, {1, n}, {1, 29}}, {{29, 35}, {1, 1}, {1, n}}, {{1, 29}, {1, n}, {29, 35}}}) {
    Twin& t = k.t;
    t.reset();
    Floats mask = random_floats(size_t(fits[0].n));
    for (float& v : mask) v = v > 0 ? 1.0f : 0.0f;
    auto cond = t.in(mask);
    auto a = t.in(random_floats(size_t(fits[1].n)));
    auto b = t.in(random_floats(size_t(fits[2].n)));
    auto out = t.out(size_t(n));
    stow::where(t.cpu, out.h, cond.h, a.h, b.h, n, fits[0].inner, fits[0].n, fits[1].inner, fits[1].n, fits[2].inner, fits[2].n);
    cuda::where(t.gpu, out.d, cond.d, a.d, b.d, n, fits[0].inner, fits[0].n, fits[1].inner, fits[1].n, fits[2].inner, fits[2].n);
    k.expect_case("where cond " + std::to_string(fits[0].n) + " a " + std::to_string(fits[1].n) + " b " + std::to_string(fits[2].n),
                  bitwise(t.device(out), t.host(out)));
  }
}

// ---------------------------------------------------------------------------------------------------

struct Named {
  const char* name;
  void (*fn)(Check&);
};

const Named kChecks[] = {
    {"iota", check_iota},
    {"fill", check_fill},
    {"add", check_add},
    {"mul", check_mul},
    {"scale", check_scale},
    {"gelu_fwd", check_gelu_fwd},
    {"gelu_bwd", check_gelu_bwd},
    {"silu_fwd", check_silu_fwd},
    {"silu_bwd", check_silu_bwd},
    {"unary/unary_bwd", check_unary},
    {"binary/binary_bwd", check_binary_math},
    {"reduce_last/reduce_last_bwd", check_reduce_last},
    {"rope", check_rope},
    {"permute", check_permute},
    {"slice_last", check_slice_last},
    {"place_last", check_place_last},
    {"embedding_fwd", check_embedding_fwd},
    {"embedding_bwd", check_embedding_bwd},
    {"embedding_bwd_acc", check_embedding_bwd_acc},
    {"matmul", check_matmul},
    {"sum_rows", check_sum_rows},
    {"layernorm_fwd", check_layernorm_fwd},
    {"layernorm_bwd", check_layernorm_bwd},
    {"attention_fwd", check_attention_fwd},
    {"attention_bwd", check_attention_bwd},
    {"attention_fwd/attention_bwd (not causal, masked, cross)", check_attention_variants},
    {"attention_fwd/attention_bwd (broadcast and learned masks)", check_attention_masks},
    {"dropout", check_dropout},
    {"cross_entropy_fwd", check_cross_entropy_fwd},
    {"cross_entropy_bwd", check_cross_entropy_bwd},
    {"linear_cross_entropy_fwd", check_linear_cross_entropy_fwd},
    {"linear_cross_entropy_bwd", check_linear_cross_entropy_bwd},
    {"grad_norm", check_grad_norm},
    {"sum_squares", check_sum_squares},
    {"norm_from_squares", check_norm_from_squares},
    {"adamw", check_adamw},
    {"h2d_async/d2h_async/wait_transfer/adamw_on_host/drain_transfers", check_offload},
    {"all_reduce", check_all_reduce},
    {"dp_all_reduce", check_dp_all_reduce},
    {"all_gather", check_all_gather},
    {"reduce_scatter", check_reduce_scatter},
    {"broadcast", check_broadcast},
    {"shard_slice", check_shard_slice},
    {"embedding_vp_fwd", check_embedding_vp_fwd},
    {"embedding_vp_bwd", check_embedding_vp_bwd},
    {"cross_entropy_vp_max", check_cross_entropy_vp_max},
    {"cross_entropy_vp_sums", check_cross_entropy_vp_sums},
    {"cross_entropy_vp", check_cross_entropy_vp},
    {"cross_entropy_vp_bwd", check_cross_entropy_vp_bwd},
    {"pad", check_pad},
    {"expand/expand_bwd", check_expand},
    {"take_axis/take_axis_bwd", check_take_axis},
    {"where", check_where},
};

// In the child: one check, its line, exit 0 when it passed.
int run_one(const Named& c) {
  // A hung kernel (a barrier that never completes) must end as a failure, not stall the test.
  alarm(120);
  std::string detail;
  int cases = 0;
  try {
    cuda::Runtime rt(2);
    Twin twin(rt);
    Check k(rt, twin);
    c.fn(k);
    twin.sync();
    cases = k.cases;
    for (const std::string& f : k.failures) detail = cat(detail, f);
    if (cases == 0) detail = "no cases ran";
  } catch (const std::exception& e) {
    detail = cat(detail, std::string("threw: ") + e.what());
  }
  if (std::getenv("STOW_CHECK_VERBOSE") != nullptr) std::printf("  %s: %d comparisons\n", c.name, cases);
  if (detail.empty())
    std::printf("ok %s\n", c.name);
  else
    std::printf("FAIL %s: %s\n", c.name, detail.c_str());
  std::fflush(stdout);
  // Skip static destructors: the emulation's stream threads may still hold its state.
  std::_Exit(detail.empty() ? 0 : 1);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "--one") == 0) {
    for (const Named& c : kChecks)
      if (std::strcmp(c.name, argv[2]) == 0) return run_one(c);
    std::fprintf(stderr, "no check named %s\n", argv[2]);
    return 2;
  }
  // Optional arguments: run only the checks named.
  int passed = 0, failed = 0;
  for (const Named& c : kChecks) {
    bool wanted = argc == 1;
    for (int i = 1; i < argc; i++) wanted = wanted || std::strcmp(argv[i], c.name) == 0;
    if (!wanted) continue;
    std::fflush(stdout);
    char* child_argv[] = {argv[0], const_cast<char*>("--one"), const_cast<char*>(c.name), nullptr};
    pid_t pid = 0;
    int status = 0;
    if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, child_argv, environ) != 0 || waitpid(pid, &status, 0) != pid) {
      std::printf("FAIL %s: could not run the check in a child process\n", c.name);
      failed++;
      continue;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      passed++;
    } else {
      failed++;
      if (WIFSIGNALED(status))
        std::printf("FAIL %s: the check's process died of signal %d (%s)\n", c.name, WTERMSIG(status),
                    WTERMSIG(status) == SIGALRM ? "timed out" : strsignal(WTERMSIG(status)));
      else if (WEXITSTATUS(status) != 1)
        std::printf("FAIL %s: the check's process exited with status %d\n", c.name, WEXITSTATUS(status));
    }
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
