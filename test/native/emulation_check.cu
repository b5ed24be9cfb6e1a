// Checks the emulated CUDA target (runtime/cuda/emulate/) against CUDA's semantics, written as a CUDA
// test of the runtime and the kernel language would be: every expected value comes from this file (loop
// nests, host arithmetic, a double-precision GEMM, a bfloat16 rounding written from the definition, and
// PyTorch's conversion read from a file), never from the emulation. The same source is valid CUDA for
// nvcc; the race checker's checks use the emulation's own API and compile only under it.
//
//   emulation_check --bf16-reference FILE   all the checks that leave the context usable
//   emulation_check --only NAME             one check whose error is sticky (it poisons the context), so
//                                           each runs in its own process; NAME is one of run_isolated's
//
// Prints one line per check ("PASS name" or "FAIL name: detail") and a final "N passed, M failed"; exits
// 1 on any failure.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <library_types.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cuda/launch.h"  // STOW_LAUNCH(kernel, grid, block, stream)(args...): kernel<<<grid, block, 0, stream>>>(args...)

// cuBLAS, as its C API declares it (the enumerations are ints); nvcc builds link -lcublas.
struct cublasContext;
extern "C" int cublasCreate_v2(cublasContext** handle);
extern "C" int cublasDestroy_v2(cublasContext* handle);
extern "C" int cublasSetStream_v2(cublasContext* handle, cudaStream_t stream);
extern "C" int cublasGemmStridedBatchedEx(cublasContext* handle, int transa, int transb, int m, int n, int k,
                                          const void* alpha, const void* a, cudaDataType a_type, int lda,
                                          long long stride_a, const void* b, cudaDataType b_type, int ldb,
                                          long long stride_b, const void* beta, void* c, cudaDataType c_type, int ldc,
                                          long long stride_c, int batch_count, int compute_type, int algo);

namespace {

constexpr unsigned kFull = 0xffffffffu;
constexpr int kTimedOut = -1;
// Spin iterations before a gated kernel gives up (seconds of spinning): the checks open their gates
// within milliseconds, so only a broken emulation ever reaches it, and then it fails instead of hanging.
constexpr long long kSpinLimit = 1LL << 32;

// ---------------------------------------------------------------------------------------------------
// Reporting

int g_passed = 0, g_failed = 0;

void report(bool ok, const std::string& name, const std::string& detail = "") {
  (ok ? g_passed : g_failed)++;
  std::printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", name.c_str(), ok || detail.empty() ? "" : ": ", ok ? "" : detail.c_str());
  std::fflush(stdout);
}

std::string err_text(cudaError_t e) { return std::to_string(int(e)) + " (" + cudaGetErrorString(e) + ")"; }

// A setup call that must succeed; a failure is reported (it would make the check that follows meaningless).
bool must(cudaError_t e, const std::string& what) {
  if (e == cudaSuccess) return true;
  report(false, "setup: " + what, err_text(e));
  return false;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

template <class T>
T* device_alloc(size_t n) {
  void* p = nullptr;
  must(cudaMalloc(&p, n * sizeof(T)), "cudaMalloc");
  return static_cast<T*>(p);
}

template <class T>
T* to_device(const std::vector<T>& h) {
  T* d = device_alloc<T>(h.size());
  must(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy to the device");
  return d;
}

template <class T>
std::vector<T> to_host(const T* d, size_t n) {
  std::vector<T> h(n);
  must(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost), "cudaMemcpy to the host");
  return h;
}

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// ---------------------------------------------------------------------------------------------------
// Kernels

// Every thread writes its coordinates at the slot of its (block, thread) in row-major order of z, y, x.
__global__ void coords_kernel(unsigned* out) {
  const unsigned block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  unsigned* o = out + 12 * (size_t(block) * blockDim.x * blockDim.y * blockDim.z + thread);
  o[0] = threadIdx.x, o[1] = threadIdx.y, o[2] = threadIdx.z;
  o[3] = blockIdx.x, o[4] = blockIdx.y, o[5] = blockIdx.z;
  o[6] = blockDim.x, o[7] = blockDim.y, o[8] = blockDim.z;
  o[9] = gridDim.x, o[10] = gridDim.y, o[11] = gridDim.z;
}

__global__ void reverse_kernel(const int* in, int* out) {
  __shared__ int tile[1024];
  const unsigned n = blockDim.x, t = threadIdx.x;
  tile[t] = in[blockIdx.x * n + t];
  __syncthreads();
  out[blockIdx.x * n + t] = tile[n - 1 - t];
}

// Pairwise tree in shared memory, for any block size.
__global__ void block_sum_kernel(const int* in, int* out) {
  __shared__ int tile[1024];
  const unsigned n = blockDim.x, t = threadIdx.x;
  tile[t] = in[blockIdx.x * n + t];
  __syncthreads();
  for (unsigned s = 1; s < n; s *= 2) {
    if (t % (2 * s) == 0 && t + s < n) tile[t] += tile[t + s];
    __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = tile[0];
}

// Each block stores its index in shared memory and reads it back after others have had time to run.
__global__ void shared_owner_kernel(int* out, long long spin) {
  __shared__ int owner;
  if (threadIdx.x == 0) owner = int(blockIdx.x);
  __syncthreads();
  if (threadIdx.x == 0) {
    volatile long long i = 0;
    while (i < spin) i = i + 1;
  }
  __syncthreads();
  out[blockIdx.x * blockDim.x + threadIdx.x] = owner;
}

__device__ int value_of(unsigned gid) { return int(gid * 7u + 3u); }

// out[gid * 9 + k]: the k-th shuffle of thread gid.
__global__ void shuffle_kernel(int* out, double* out_double) {
  const unsigned gid = blockIdx.x * blockDim.x + threadIdx.x;
  const int v = value_of(gid);
  int* o = out + size_t(gid) * 9;
  o[0] = __shfl_sync(kFull, v, 5);
  o[1] = __shfl_sync(kFull, v, 3, 8);
  o[2] = __shfl_sync(kFull, v, 37);  // the source lane is taken modulo the width
  int sum = v;
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(kFull, sum, offset);
  o[3] = sum;
  int part = v;
  for (int offset = 4; offset > 0; offset /= 2) part += __shfl_xor_sync(kFull, part, offset, 8);
  o[4] = part;
  o[5] = __shfl_down_sync(kFull, v, 3, 16);
  o[6] = __shfl_up_sync(kFull, v, 2, 8);
  o[7] = __shfl_down_sync(kFull, v, 5);
  o[8] = __shfl_xor_sync(kFull, v, 8, 8);  // laneMask >= width: only earlier segments can be read
  out_double[gid] = __shfl_sync(kFull, double(v) + 0.25, 9);
}

// A block of 48 threads: warp 1 has lanes 0..15 only, and sums over them with the matching mask.
__global__ void partial_warp_kernel(int* out) {
  const unsigned warp = threadIdx.x / 32, left = blockDim.x - warp * 32, lanes = left < 32 ? left : 32;
  const unsigned mask = lanes == 32 ? kFull : (1u << lanes) - 1;
  int x = value_of(threadIdx.x);
  for (int offset = 16; offset > 0; offset /= 2)
    if (unsigned(offset) < lanes) x += __shfl_xor_sync(mask, x, offset);
  out[threadIdx.x] = x;
}

// out[gid * 8 + k]: the k-th vote of thread gid; -1 where the lane took no part.
__global__ void vote_kernel(int* out) {
  const unsigned gid = blockIdx.x * blockDim.x + threadIdx.x, lane = threadIdx.x % 32;
  const int v = value_of(gid);
  int* o = out + size_t(gid) * 8;
  o[0] = int(__ballot_sync(kFull, v % 3 == 0));
  o[1] = __all_sync(kFull, lane != 7);
  o[2] = __any_sync(kFull, lane == 31);
  o[3] = __all_sync(kFull, v > 0);
  o[4] = __any_sync(kFull, 0);
  if (lane < 20) {
    o[5] = int(__ballot_sync(0x000fffffu, lane % 2 == 1));
    o[6] = __all_sync(0x000fffffu, lane < 20);   // false for lanes outside the mask, which do not count
    o[7] = __any_sync(0x000fffffu, lane >= 20);  // true only outside the mask
  } else {
    o[5] = o[6] = o[7] = -1;
  }
}

// Legal CUDA: lanes 16..31 exchange among themselves (mask 0xffff0000) while lanes 0..15 have gone on
// to a full-warp shuffle, which waits for the others to arrive. out[t] = t for t < 16, 16 above.
__global__ void diverged_exchanges_kernel(int* out) {
  int v = int(threadIdx.x);
  if (threadIdx.x >= 16) v = __shfl_sync(0xffff0000u, v, 16);
  out[threadIdx.x] = __shfl_sync(kFull, v, 0) + v;
}

// Every thread updates each target kAtomicRepeats times, so that blocks on different OS threads contend.
constexpr int kAtomicRepeats = 64;

__global__ void atomics_kernel(int* count, float* fsum, double* dsum, int* max_value, int* min_value, int* cas_count,
                               unsigned long long* big) {
  const unsigned gid = blockIdx.x * blockDim.x + threadIdx.x;
  // One tight loop per operation, so that the updates of one target from different blocks overlap.
  for (int r = 0; r < kAtomicRepeats; r++) atomicAdd(count, 1);
  for (int r = 0; r < kAtomicRepeats; r++) atomicAdd(fsum, 1.0f);
  for (int r = 0; r < kAtomicRepeats; r++) atomicAdd(dsum, 0.5);
  for (int r = 0; r < kAtomicRepeats; r++) atomicMax(max_value, int((gid * 37u + unsigned(r)) % 10007u));
  for (int r = 0; r < kAtomicRepeats; r++) atomicMin(min_value, int((gid * 53u + unsigned(r)) % 10009u) - 5000);
  for (int r = 0; r < kAtomicRepeats; r++) {
    int old = *static_cast<volatile int*>(cas_count), assumed;
    do {
      assumed = old;
      old = atomicCAS(cas_count, assumed, assumed + 1);
    } while (old != assumed);
  }
  for (int r = 0; r < kAtomicRepeats; r++) atomicAdd(big, 1ull << 33);
}

__global__ void fill_kernel(int* out, int value) { out[blockIdx.x * blockDim.x + threadIdx.x] = value; }

__global__ void copy_kernel(const int* in, int* out) { *out = *in; }

// Waits (bounded) until the host or another kernel opens the gate, then stores `value`; kTimedOut if
// the gate never opened.
__global__ void gated_store_kernel(const volatile int* gate, int* out, int value, long long limit) {
  long long i = 0;
  while (*gate == 0 && i < limit) i++;
  *out = *gate != 0 ? value : kTimedOut;
}

__global__ void open_gate_kernel(volatile int* gate) { *gate = 1; }

__global__ void to_bf16_kernel(const float* in, __nv_bfloat16* out, int n) {
  const int i = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) out[i] = __float2bfloat16(in[i]);
}

__global__ void from_bf16_kernel(const __nv_bfloat16* in, float* out, int n) {
  const int i = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) out[i] = __bfloat162float(in[i]);
}

// Undefined behaviour, which the emulation must report as the launch's error.
__global__ void mask_leaves_out_caller_kernel(int* out) {
  out[threadIdx.x] = __shfl_sync(0xfffffffeu, int(threadIdx.x), 1);  // lane 0 calls, outside the mask
}

__global__ void shuffle_waits_for_exited_kernel(int* out) {
  if (threadIdx.x >= 16) return;  // lanes 16..31 exit while 0..15 wait for them
  out[threadIdx.x] = __shfl_sync(kFull, int(threadIdx.x), 0);
}

__global__ void shuffle_names_exited_kernel(int* out) {
  if (threadIdx.x >= 16) return;
  __syncthreads();  // the exited lanes do not hold it up; once past it they have all exited
  out[threadIdx.x] = __shfl_sync(kFull, int(threadIdx.x), 0);
}

__global__ void barrier_deadlock_kernel(int* out) {
  if (threadIdx.x < 16) {
    __syncthreads();
    out[threadIdx.x] = 1;
  } else {
    out[threadIdx.x] = __shfl_sync(kFull, int(threadIdx.x), 0);
  }
}

// ---------------------------------------------------------------------------------------------------
// Thread and block indices

void check_coords(const char* name, dim3 grid, dim3 block) {
  const size_t threads = size_t(grid.x) * grid.y * grid.z * block.x * block.y * block.z;
  unsigned* d = device_alloc<unsigned>(threads * 12);
  STOW_LAUNCH(coords_kernel, grid, block, nullptr)(d);
  must(cudaGetLastError(), std::string("launching coords_kernel ") + name);
  const std::vector<unsigned> got = to_host(d, threads * 12);
  cudaFree(d);
  size_t slot = 0;
  std::string bad;
  for (unsigned bz = 0; bz < grid.z; bz++)
    for (unsigned by = 0; by < grid.y; by++)
      for (unsigned bx = 0; bx < grid.x; bx++)
        for (unsigned tz = 0; tz < block.z; tz++)
          for (unsigned ty = 0; ty < block.y; ty++)
            for (unsigned tx = 0; tx < block.x; tx++, slot++) {
              const unsigned want[12] = {tx, ty, tz, bx, by, bz, block.x, block.y, block.z, grid.x, grid.y, grid.z};
              if (bad.empty() && std::memcmp(want, &got[slot * 12], sizeof want) != 0)
                bad = "block (" + std::to_string(bx) + "," + std::to_string(by) + "," + std::to_string(bz) + ") thread (" +
                      std::to_string(tx) + "," + std::to_string(ty) + "," + std::to_string(tz) + ") wrote threadIdx.x " +
                      std::to_string(got[slot * 12]) + ", blockIdx.x " + std::to_string(got[slot * 12 + 3]);
            }
  report(bad.empty(), std::string("indices ") + name, bad);
}

// ---------------------------------------------------------------------------------------------------
// Shared memory and __syncthreads

void check_shared() {
  std::mt19937 rng(11);
  {
    const unsigned n = 100, blocks = 16;  // not a multiple of 32
    std::vector<int> in(n * blocks);
    for (int& x : in) x = int(rng() % 100000);
    int* d_in = to_device(in);
    int* d_out = device_alloc<int>(in.size());
    STOW_LAUNCH(reverse_kernel, blocks, n, nullptr)(d_in, d_out);
    const std::vector<int> got = to_host(d_out, in.size());
    std::string bad;
    for (unsigned b = 0; b < blocks && bad.empty(); b++)
      for (unsigned t = 0; t < n; t++)
        if (got[b * n + t] != in[b * n + (n - 1 - t)]) {
          bad = "block " + std::to_string(b) + " thread " + std::to_string(t) + ": " + std::to_string(got[b * n + t]) +
                ", expected " + std::to_string(in[b * n + (n - 1 - t)]);
          break;
        }
    report(bad.empty(), "shared memory: block-wide reversal across __syncthreads (block 100)", bad);
    cudaFree(d_in);
    cudaFree(d_out);
  }
  {
    const unsigned n = 200, blocks = 12;
    std::vector<int> in(n * blocks);
    for (int& x : in) x = int(rng() % 1000) - 500;
    int* d_in = to_device(in);
    int* d_out = device_alloc<int>(blocks);
    STOW_LAUNCH(block_sum_kernel, blocks, n, nullptr)(d_in, d_out);
    const std::vector<int> got = to_host(d_out, blocks);
    std::string bad;
    for (unsigned b = 0; b < blocks && bad.empty(); b++) {
      long want = 0;
      for (unsigned t = 0; t < n; t++) want += in[b * n + t];
      if (got[b] != want) bad = "block " + std::to_string(b) + ": " + std::to_string(got[b]) + ", expected " + std::to_string(want);
    }
    report(bad.empty(), "shared memory: tree reduction per block (block 200)", bad);
    cudaFree(d_in);
    cudaFree(d_out);
  }
  {
    const unsigned n = 64, blocks = 32;
    int* d_out = device_alloc<int>(n * blocks);
    STOW_LAUNCH(shared_owner_kernel, blocks, n, nullptr)(d_out, 300000LL);
    const std::vector<int> got = to_host(d_out, n * blocks);
    std::string bad;
    for (unsigned i = 0; i < n * blocks && bad.empty(); i++)
      if (got[i] != int(i / n))
        bad = "block " + std::to_string(i / n) + " thread " + std::to_string(i % n) + " read block " + std::to_string(got[i]) +
              "'s shared variable";
    report(bad.empty(), "shared memory: each block has its own (32 blocks running at once)", bad);
    cudaFree(d_out);
  }
}

// ---------------------------------------------------------------------------------------------------
// Warp intrinsics

int want_value(unsigned gid) { return int(gid * 7u + 3u); }

void check_warp_intrinsics() {
  const unsigned block = 64, grid = 2, threads = block * grid;
  int* d = device_alloc<int>(threads * 9);
  double* dd = device_alloc<double>(threads);
  STOW_LAUNCH(shuffle_kernel, grid, block, nullptr)(d, dd);
  const std::vector<int> got = to_host(d, threads * 9);
  const std::vector<double> got_double = to_host(dd, threads);
  cudaFree(d);
  cudaFree(dd);
  const char* names[9] = {"__shfl_sync from lane 5",
                          "__shfl_sync width 8 from lane 3",
                          "__shfl_sync from lane 37 (modulo 32)",
                          "__shfl_xor_sync butterfly sum",
                          "__shfl_xor_sync butterfly sum within width 8",
                          "__shfl_down_sync delta 3 width 16",
                          "__shfl_up_sync delta 2 width 8",
                          "__shfl_down_sync delta 5",
                          "__shfl_xor_sync laneMask 8 width 8 (reads earlier segments only)"};
  for (int k = 0; k < 9; k++) {
    std::string bad;
    for (unsigned gid = 0; gid < threads && bad.empty(); gid++) {
      const int lane = int(gid % 32), base = int(gid - gid % 32);
      auto v = [&](int l) { return want_value(unsigned(base + l)); };
      long want = 0;
      switch (k) {
        case 0: want = v(5); break;
        case 1: want = v((lane / 8) * 8 + 3); break;
        case 2: want = v(5); break;
        case 3: for (int l = 0; l < 32; l++) want += v(l); break;
        case 4: for (int l = (lane / 8) * 8; l < (lane / 8) * 8 + 8; l++) want += v(l); break;
        case 5: want = lane % 16 + 3 < 16 ? v(lane + 3) : v(lane); break;
        case 6: want = lane % 8 >= 2 ? v(lane - 2) : v(lane); break;
        case 7: want = lane + 5 < 32 ? v(lane + 5) : v(lane); break;
        // PTX shfl.bfly: the source is lane ^ 8 when it is at or below the end of the caller's segment
        // (CUDA Programming Guide: "each group of width consecutive threads are able to access elements
        // from earlier groups"), else the caller's own value.
        case 8: want = (lane ^ 8) <= (lane / 8) * 8 + 7 ? v(lane ^ 8) : v(lane); break;
      }
      if (got[gid * 9 + k] != want)
        bad = "thread " + std::to_string(gid) + " (lane " + std::to_string(lane) + "): " + std::to_string(got[gid * 9 + k]) +
              ", expected " + std::to_string(want);
    }
    report(bad.empty(), names[k], bad);
  }
  {
    std::string bad;
    for (unsigned gid = 0; gid < threads && bad.empty(); gid++) {
      const double want = double(want_value(gid - gid % 32 + 9)) + 0.25;
      if (got_double[gid] != want) bad = "thread " + std::to_string(gid) + ": " + std::to_string(got_double[gid]);
    }
    report(bad.empty(), "__shfl_sync of a double (8 bytes)", bad);
  }
  {
    int* d48 = device_alloc<int>(48);
    STOW_LAUNCH(partial_warp_kernel, 1, 48, nullptr)(d48);
    const std::vector<int> got48 = to_host(d48, 48);
    cudaFree(d48);
    long full = 0, partial = 0;
    for (unsigned t = 0; t < 32; t++) full += want_value(t);
    for (unsigned t = 32; t < 48; t++) partial += want_value(t);
    std::string bad;
    for (unsigned t = 0; t < 48 && bad.empty(); t++)
      if (got48[t] != (t < 32 ? full : partial))
        bad = "thread " + std::to_string(t) + ": " + std::to_string(got48[t]) + ", expected " + std::to_string(t < 32 ? full : partial);
    report(bad.empty(), "__shfl_xor_sync sum over a partial last warp (block 48, mask 0x0000ffff)", bad);
  }
  {
    int* dv = device_alloc<int>(threads * 8);
    STOW_LAUNCH(vote_kernel, grid, block, nullptr)(dv);
    const std::vector<int> gv = to_host(dv, threads * 8);
    cudaFree(dv);
    const char* vote_names[8] = {"__ballot_sync full mask", "__all_sync false for one lane", "__any_sync true for one lane",
                                 "__all_sync true for all", "__any_sync all false", "__ballot_sync partial mask 0x000fffff",
                                 "__all_sync partial mask ignores lanes outside it",
                                 "__any_sync partial mask ignores lanes outside it"};
    for (int k = 0; k < 8; k++) {
      std::string bad;
      for (unsigned gid = 0; gid < threads && bad.empty(); gid++) {
        const unsigned lane = gid % 32, base = gid - lane;
        unsigned ballot = 0, odd_below_20 = 0;
        for (unsigned l = 0; l < 32; l++) ballot |= unsigned(want_value(base + l) % 3 == 0) << l;
        for (unsigned l = 0; l < 20; l++) odd_below_20 |= unsigned(l % 2 == 1) << l;
        const int want[8] = {int(ballot), 0, 1, 1, 0, lane < 20 ? int(odd_below_20) : -1, lane < 20 ? 1 : -1, lane < 20 ? 0 : -1};
        if (gv[gid * 8 + k] != want[k])
          bad = "thread " + std::to_string(gid) + ": " + std::to_string(gv[gid * 8 + k]) + ", expected " + std::to_string(want[k]);
      }
      report(bad.empty(), vote_names[k], bad);
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Atomics

void check_atomics() {
  const unsigned blocks = 64, block = 256, n = blocks * block * kAtomicRepeats;  // updates of each target
  int* count = device_alloc<int>(1);
  float* fsum = device_alloc<float>(1);
  double* dsum = device_alloc<double>(1);
  int* max_value = device_alloc<int>(1);
  int* min_value = device_alloc<int>(1);
  int* cas_count = device_alloc<int>(1);
  unsigned long long* big = device_alloc<unsigned long long>(1);
  const int zero = 0, lowest = -1000000, highest = 1000000;
  const float fzero = 0;
  const double dzero = 0;
  const unsigned long long bigzero = 0;
  cudaMemcpy(count, &zero, 4, cudaMemcpyHostToDevice);
  cudaMemcpy(cas_count, &zero, 4, cudaMemcpyHostToDevice);
  cudaMemcpy(max_value, &lowest, 4, cudaMemcpyHostToDevice);
  cudaMemcpy(min_value, &highest, 4, cudaMemcpyHostToDevice);
  cudaMemcpy(fsum, &fzero, 4, cudaMemcpyHostToDevice);
  cudaMemcpy(dsum, &dzero, 8, cudaMemcpyHostToDevice);
  cudaMemcpy(big, &bigzero, 8, cudaMemcpyHostToDevice);
  STOW_LAUNCH(atomics_kernel, blocks, block, nullptr)(count, fsum, dsum, max_value, min_value, cas_count, big);
  must(cudaDeviceSynchronize(), "atomics_kernel");
  int want_max = -1, want_min = 1 << 30;
  for (unsigned g = 0; g < blocks * block; g++)
    for (unsigned r = 0; r < unsigned(kAtomicRepeats); r++) {
      want_max = std::max(want_max, int((g * 37u + r) % 10007u));
      want_min = std::min(want_min, int((g * 53u + r) % 10009u) - 5000);
    }
  const int got_count = to_host(count, 1)[0], got_cas = to_host(cas_count, 1)[0];
  const int got_max = to_host(max_value, 1)[0], got_min = to_host(min_value, 1)[0];
  const float got_f = to_host(fsum, 1)[0];
  const double got_d = to_host(dsum, 1)[0];
  const unsigned long long got_big = to_host(big, 1)[0];
  report(got_count == int(n), "atomicAdd int over 64 blocks x 256 threads x 64", std::to_string(got_count) + ", expected " + std::to_string(n));
  report(got_f == float(n), "atomicAdd float over 64 blocks", std::to_string(got_f));
  report(got_d == 0.5 * n, "atomicAdd double over 64 blocks", std::to_string(got_d));
  report(got_max == want_max, "atomicMax over 64 blocks", std::to_string(got_max) + ", expected " + std::to_string(want_max));
  report(got_min == want_min, "atomicMin over 64 blocks", std::to_string(got_min) + ", expected " + std::to_string(want_min));
  report(got_cas == int(n), "atomicCAS increment loop over 64 blocks", std::to_string(got_cas));
  report(got_big == (unsigned long long)n << 33, "atomicAdd unsigned long long beyond 32 bits", std::to_string(got_big));
  for (void* p : {(void*)count, (void*)fsum, (void*)dsum, (void*)max_value, (void*)min_value, (void*)cas_count, (void*)big}) cudaFree(p);
}

// ---------------------------------------------------------------------------------------------------
// Launch configuration errors: the launch's own error, not sticky.

void check_launch_errors() {
  int* d = device_alloc<int>(64);
  must(cudaGetLastError(), "no error pending before the configuration checks");
  struct Case {
    const char* name;
    dim3 grid, block;
  };
  const Case cases[] = {{"block of 2048 threads", dim3(1), dim3(2048)},
                        {"grid of 0 blocks", dim3(0), dim3(32)},
                        {"block (32,32,2): 2048 threads in all", dim3(1), dim3(32, 32, 2)},
                        {"block z of 65", dim3(1), dim3(1, 1, 65)},
                        {"grid y of 65536", dim3(1, 65536), dim3(32)}};
  for (const Case& c : cases) {
    STOW_LAUNCH(fill_kernel, c.grid, c.block, nullptr)(d, 1);
    const cudaError_t first = cudaGetLastError(), second = cudaGetLastError();
    report(first == cudaErrorInvalidConfiguration && second == cudaSuccess,
           std::string("launch with ") + c.name + ": cudaErrorInvalidConfiguration, then cleared",
           "cudaGetLastError gave " + err_text(first) + ", then " + err_text(second));
  }
  STOW_LAUNCH(fill_kernel, 2, 32, nullptr)(d, 77);
  const cudaError_t launched = cudaGetLastError(), synced = cudaDeviceSynchronize();
  const std::vector<int> got = to_host(d, 64);
  bool all = true;
  for (int x : got) all = all && x == 77;
  report(launched == cudaSuccess && synced == cudaSuccess && all, "a good launch after configuration errors runs",
         "launch " + err_text(launched) + ", synchronize " + err_text(synced) + ", out[0] " + std::to_string(got[0]));
  cudaFree(d);
}

// ---------------------------------------------------------------------------------------------------
// Streams, events, the legacy default stream. Gates live in pinned host memory, which kernels and the
// host both see; a gated kernel cannot finish before its gate opens.

struct Gates {
  int* gate = nullptr;  // pinned
  int next = 0;
  Gates() {
    void* p = nullptr;
    must(cudaMallocHost(&p, 64 * sizeof(int)), "cudaMallocHost for gates");
    gate = static_cast<int*>(p);
    for (int i = 0; i < 64; i++) gate[i] = 0;
  }
  ~Gates() { cudaFreeHost(gate); }
  int* take() { return &gate[next++]; }
  static void open(int* g) {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    *static_cast<volatile int*>(g) = 1;
  }
};

void check_streams() {
  Gates gates;
  cudaStream_t a, b;
  must(cudaStreamCreate(&a), "cudaStreamCreate a");
  must(cudaStreamCreate(&b), "cudaStreamCreate b");
  int* cells = device_alloc<int>(16);  // unwritten cells hold NaN bytes (-1 as int): see check_memory

  // Concurrency: the kernel on a finishes only if the kernel on b runs while it spins.
  {
    int* flag = gates.take();
    STOW_LAUNCH(gated_store_kernel, 1, 1, a)(flag, cells + 0, 1, kSpinLimit);
    STOW_LAUNCH(open_gate_kernel, 1, 1, b)(flag);
    must(cudaStreamSynchronize(a), "synchronizing a");
    must(cudaStreamSynchronize(b), "synchronizing b");
    const int got = to_host(cells + 0, 1)[0];
    report(got == 1, "two streams run concurrently (a spins until b sets a flag)",
           got == kTimedOut ? "the spinning kernel timed out: the streams ran one after the other" : std::to_string(got));
  }
  // In order on one stream: the copy waits for the gated store before it.
  {
    int* gate = gates.take();
    STOW_LAUNCH(gated_store_kernel, 1, 1, a)(gate, cells + 1, 11, kSpinLimit);
    STOW_LAUNCH(copy_kernel, 1, 1, a)(cells + 1, cells + 2);
    sleep_ms(30);
    const cudaError_t busy = cudaStreamQuery(a);
    Gates::open(gate);
    must(cudaStreamSynchronize(a), "synchronizing a");
    const int got = to_host(cells + 2, 1)[0];
    report(busy == cudaErrorNotReady && got == 11, "two kernels on one stream run in order",
           "cudaStreamQuery while gated " + err_text(busy) + "; the second kernel read " + std::to_string(got) + ", expected 11");
  }
  // Events: b waits for what a recorded.
  {
    cudaEvent_t done, never;
    must(cudaEventCreate(&done), "cudaEventCreate");
    must(cudaEventCreate(&never), "cudaEventCreate");
    int* gate = gates.take();
    STOW_LAUNCH(gated_store_kernel, 1, 1, a)(gate, cells + 3, 42, kSpinLimit);
    must(cudaEventRecord(done, a), "cudaEventRecord");
    must(cudaStreamWaitEvent(b, done, 0), "cudaStreamWaitEvent");
    STOW_LAUNCH(copy_kernel, 1, 1, b)(cells + 3, cells + 4);
    sleep_ms(30);
    const cudaError_t event_busy = cudaEventQuery(done), b_busy = cudaStreamQuery(b), never_recorded = cudaEventQuery(never);
    Gates::open(gate);
    const cudaError_t synced = cudaEventSynchronize(done), event_done = cudaEventQuery(done);
    must(cudaStreamSynchronize(b), "synchronizing b");
    const int got = to_host(cells + 4, 1)[0];
    report(event_busy == cudaErrorNotReady && b_busy == cudaErrorNotReady, "cudaEventQuery and cudaStreamQuery: not ready while gated",
           "event " + err_text(event_busy) + ", stream b " + err_text(b_busy));
    report(synced == cudaSuccess && event_done == cudaSuccess, "cudaEventSynchronize waits; cudaEventQuery then succeeds",
           "synchronize " + err_text(synced) + ", query " + err_text(event_done));
    report(never_recorded == cudaSuccess, "cudaEventQuery of an event never recorded succeeds", err_text(never_recorded));
    report(got == 42, "cudaStreamWaitEvent: b reads what a wrote before the event", std::to_string(got) + ", expected 42");
    cudaEventDestroy(done);
    cudaEventDestroy(never);
  }
  // Event record captures the work queued so far, not later work: b must not wait for a's second kernel.
  {
    cudaEvent_t early;
    must(cudaEventCreate(&early), "cudaEventCreate");
    int* gate = gates.take();
    must(cudaEventRecord(early, a), "cudaEventRecord");
    STOW_LAUNCH(gated_store_kernel, 1, 1, a)(gate, cells + 5, 5, kSpinLimit);
    must(cudaStreamWaitEvent(b, early, 0), "cudaStreamWaitEvent");
    STOW_LAUNCH(fill_kernel, 1, 1, b)(cells + 6, 6);
    must(cudaStreamSynchronize(b), "synchronizing b");
    const cudaError_t a_busy = cudaStreamQuery(a);
    Gates::open(gate);
    must(cudaStreamSynchronize(a), "synchronizing a");
    report(a_busy == cudaErrorNotReady && to_host(cells + 5, 1)[0] == 5,
           "cudaStreamWaitEvent waits only for the work before the record", "a was " + err_text(a_busy) + " when b finished");
    cudaEventDestroy(early);
  }
  cudaStreamDestroy(a);
  cudaStreamDestroy(b);
  cudaFree(cells);
}

void check_legacy_stream() {
  Gates gates;
  cudaStream_t blocking, nonblocking;
  must(cudaStreamCreateWithFlags(&blocking, cudaStreamDefault), "cudaStreamCreateWithFlags default");
  must(cudaStreamCreateWithFlags(&nonblocking, cudaStreamNonBlocking), "cudaStreamCreateWithFlags non-blocking");
  int* cells = device_alloc<int>(16);
  {  // the legacy stream waits for a blocking stream's earlier work
    int* gate = gates.take();
    STOW_LAUNCH(gated_store_kernel, 1, 1, blocking)(gate, cells + 0, 7, kSpinLimit);
    STOW_LAUNCH(copy_kernel, 1, 1, 0)(cells + 0, cells + 1);
    sleep_ms(30);
    const cudaError_t busy = cudaStreamQuery(0);
    Gates::open(gate);
    must(cudaStreamSynchronize(0), "synchronizing the legacy stream");
    const int got = to_host(cells + 1, 1)[0];
    report(busy == cudaErrorNotReady && got == 7, "legacy default stream waits for a blocking stream",
           "legacy stream " + err_text(busy) + " while gated; it read " + std::to_string(got) + ", expected 7");
  }
  {  // a blocking stream waits for the legacy stream's earlier work
    int* gate = gates.take();
    STOW_LAUNCH(gated_store_kernel, 1, 1, 0)(gate, cells + 2, 9, kSpinLimit);
    STOW_LAUNCH(copy_kernel, 1, 1, blocking)(cells + 2, cells + 3);
    sleep_ms(30);
    const cudaError_t busy = cudaStreamQuery(blocking);
    Gates::open(gate);
    must(cudaStreamSynchronize(blocking), "synchronizing the blocking stream");
    const int got = to_host(cells + 3, 1)[0];
    report(busy == cudaErrorNotReady && got == 9, "a blocking stream waits for the legacy default stream",
           "blocking stream " + err_text(busy) + " while gated; it read " + std::to_string(got) + ", expected 9");
  }
  {  // a non-blocking stream does not wait for the legacy stream
    int* gate = gates.take();
    STOW_LAUNCH(gated_store_kernel, 1, 1, 0)(gate, cells + 4, 13, kSpinLimit);
    STOW_LAUNCH(fill_kernel, 1, 1, nonblocking)(cells + 5, 5);
    must(cudaStreamSynchronize(nonblocking), "synchronizing the non-blocking stream");
    const cudaError_t legacy_busy = cudaStreamQuery(0);
    Gates::open(gate);
    must(cudaStreamSynchronize(0), "synchronizing the legacy stream");
    const int gated = to_host(cells + 4, 1)[0], filled = to_host(cells + 5, 1)[0];
    report(legacy_busy == cudaErrorNotReady && gated == 13 && filled == 5,
           "a non-blocking stream does not wait for the legacy default stream",
           "legacy stream " + err_text(legacy_busy) + " when the non-blocking stream finished; gated kernel stored " +
               std::to_string(gated) + " (-1: timed out)");
  }
  {  // the legacy stream does not wait for a non-blocking stream
    int* gate = gates.take();
    STOW_LAUNCH(gated_store_kernel, 1, 1, nonblocking)(gate, cells + 6, 17, kSpinLimit);
    STOW_LAUNCH(fill_kernel, 1, 1, 0)(cells + 7, 8);
    must(cudaStreamSynchronize(0), "synchronizing the legacy stream");
    const cudaError_t busy = cudaStreamQuery(nonblocking);
    Gates::open(gate);
    must(cudaStreamSynchronize(nonblocking), "synchronizing the non-blocking stream");
    const int gated = to_host(cells + 6, 1)[0];
    report(busy == cudaErrorNotReady && gated == 17, "the legacy default stream does not wait for a non-blocking stream",
           "non-blocking stream " + err_text(busy) + " when the legacy stream finished; gated kernel stored " + std::to_string(gated));
  }
  cudaStreamDestroy(blocking);
  cudaStreamDestroy(nonblocking);
  cudaFree(cells);
}

// ---------------------------------------------------------------------------------------------------
// Memory

void check_memory() {
  {
    const size_t bytes = 4096 + 13;
    unsigned char* d = device_alloc<unsigned char>(bytes);
    std::vector<unsigned char> got(bytes, 0);
    must(cudaMemcpy(got.data(), d, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy");
    bool all = true;
    for (unsigned char c : got) all = all && c == 0xff;
    float f;
    std::memcpy(&f, got.data(), 4);
    report(all && std::isnan(f), "cudaMalloc fills device memory with NaN bytes (0xff)");
    cudaFree(d);
  }
  {
    std::vector<int> h1(16, 1), h2(16, 2);
    int* d = device_alloc<int>(16);
    cudaStream_t s;
    must(cudaStreamCreate(&s), "cudaStreamCreate");
    const cudaError_t h2d = cudaMemcpyAsync(h2.data(), h1.data(), 64, cudaMemcpyHostToDevice, s);
    const cudaError_t last = cudaGetLastError(), cleared = cudaGetLastError();
    const cudaError_t d2h = cudaMemcpyAsync(d, h1.data(), 64, cudaMemcpyDeviceToHost, s);
    cudaGetLastError();
    const cudaError_t d2d = cudaMemcpyAsync(d, h1.data(), 64, cudaMemcpyDeviceToDevice, s);
    cudaGetLastError();
    const cudaError_t good = cudaMemcpyAsync(d, h1.data(), 64, cudaMemcpyHostToDevice, s);
    must(cudaStreamSynchronize(s), "synchronizing");
    const std::vector<int> back = to_host(d, 16);
    report(h2d == cudaErrorInvalidValue && last == cudaErrorInvalidValue && cleared == cudaSuccess,
           "cudaMemcpyAsync host-to-device into host memory: cudaErrorInvalidValue, not sticky",
           "returned " + err_text(h2d) + ", cudaGetLastError " + err_text(last) + " then " + err_text(cleared));
    report(d2h == cudaErrorInvalidValue && d2d == cudaErrorInvalidValue,
           "cudaMemcpyAsync device-to-host / device-to-device with a host source: cudaErrorInvalidValue",
           "device-to-host " + err_text(d2h) + ", device-to-device " + err_text(d2d));
    report(h2 == std::vector<int>(16, 2) && good == cudaSuccess && back == h1, "a refused copy copies nothing; a good one works");
    cudaStreamDestroy(s);
    cudaFree(d);
  }
  {
    std::vector<char> host(1 << 16);
    const cudaError_t first = cudaHostRegister(host.data(), host.size(), cudaHostRegisterDefault);
    const cudaError_t second = cudaHostRegister(host.data(), host.size(), cudaHostRegisterDefault);
    cudaGetLastError();
    const cudaError_t overlap = cudaHostRegister(host.data() + 4096, 4096, cudaHostRegisterDefault);
    cudaGetLastError();
    const cudaError_t unregister = cudaHostUnregister(host.data());
    const cudaError_t again = cudaHostUnregister(host.data());
    cudaGetLastError();
    report(first == cudaSuccess && second == cudaErrorHostMemoryAlreadyRegistered && overlap == cudaErrorHostMemoryAlreadyRegistered,
           "cudaHostRegister twice: cudaErrorHostMemoryAlreadyRegistered",
           "first " + err_text(first) + ", second " + err_text(second) + ", overlapping part " + err_text(overlap));
    report(unregister == cudaSuccess && again == cudaErrorHostMemoryNotRegistered,
           "cudaHostUnregister twice: cudaErrorHostMemoryNotRegistered", "first " + err_text(unregister) + ", second " + err_text(again));
  }
  {
    size_t free0 = 0, total0 = 0, free1 = 0, total1 = 0, free2 = 0, total2 = 0;
    must(cudaMemGetInfo(&free0, &total0), "cudaMemGetInfo");
    const size_t bytes = size_t(64) << 20;
    void* p = nullptr;
    must(cudaMalloc(&p, bytes), "cudaMalloc 64 MiB");
    must(cudaMemGetInfo(&free1, &total1), "cudaMemGetInfo");
    cudaFree(p);
    must(cudaMemGetInfo(&free2, &total2), "cudaMemGetInfo");
    const size_t taken = free0 - free1;
    report(total0 == total1 && total1 == total2 && free0 <= total0 && taken >= bytes && taken <= bytes + (size_t(4) << 20) && free2 == free0,
           "cudaMemGetInfo counts a 64 MiB allocation and its release",
           "free " + std::to_string(free0) + " -> " + std::to_string(free1) + " -> " + std::to_string(free2) + " of " + std::to_string(total0));
  }
}

// ---------------------------------------------------------------------------------------------------
// The race checker (the emulation's own API: stow::emu::node_accesses, which compiles to nothing on a GPU)

#ifdef STOW_CUDA_EMULATED
void check_race_checker() {
  using stow::emu::node_accesses;
  using stow::emu::Range;
  cudaStream_t a, b;
  must(cudaStreamCreateWithFlags(&a, cudaStreamNonBlocking), "cudaStreamCreate a");
  must(cudaStreamCreateWithFlags(&b, cudaStreamNonBlocking), "cudaStreamCreate b");
  const size_t bytes = 1024;
  std::vector<float> host(bytes / 4, 1.0f);
  float* buf[6];
  for (float*& p : buf) {
    p = device_alloc<float>(bytes / 4);
    must(cudaMemcpy(p, host.data(), bytes, cudaMemcpyHostToDevice), "initial copy");  // ordered before all below
  }
  {  // a node on a reads; a copy on b overwrites part of it with nothing ordering the two
    const std::string node = node_accesses(a, "attn_reads_q", {{buf[0], int64_t(bytes)}}, {});
    node_accesses(b, "refill_q", {}, {});  // names the copies that follow
    const cudaError_t e = cudaMemcpyAsync(buf[0] + 16, host.data(), 256, cudaMemcpyHostToDevice, b);
    const std::string text = e == cudaSuccess ? "" : cudaGetErrorString(e);
    cudaGetLastError();
    report(node.empty() && e != cudaSuccess && contains(text, "attn_reads_q") && contains(text, "refill_q"),
           "race check: a copy on b writing what a node on a read, unordered, is an error naming both",
           "copy returned " + err_text(e) + ": " + text);
  }
  {  // the same, ordered by an event
    cudaEvent_t ev;
    must(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), "cudaEventCreate");
    const std::string node = node_accesses(a, "attn_reads_k", {{buf[1], int64_t(bytes)}}, {});
    must(cudaEventRecord(ev, a), "cudaEventRecord");
    must(cudaStreamWaitEvent(b, ev, 0), "cudaStreamWaitEvent");
    node_accesses(b, "refill_k", {}, {});
    const cudaError_t e = cudaMemcpyAsync(buf[1], host.data(), bytes, cudaMemcpyHostToDevice, b);
    report(node.empty() && e == cudaSuccess, "race check: cudaEventRecord + cudaStreamWaitEvent orders them",
           err_text(e) + (e == cudaSuccess ? "" : std::string(": ") + cudaGetErrorString(e)));
    cudaGetLastError();
    cudaEventDestroy(ev);
  }
  {  // ordered by the host waiting for a
    const std::string node = node_accesses(a, "attn_reads_v", {{buf[2], int64_t(bytes)}}, {});
    must(cudaStreamSynchronize(a), "cudaStreamSynchronize a");
    node_accesses(b, "refill_v", {}, {});
    const cudaError_t e = cudaMemcpyAsync(buf[2], host.data(), bytes, cudaMemcpyHostToDevice, b);
    report(node.empty() && e == cudaSuccess, "race check: a host cudaStreamSynchronize orders them",
           err_text(e) + (e == cudaSuccess ? "" : std::string(": ") + cudaGetErrorString(e)));
    cudaGetLastError();
  }
  {  // a copy on b reading what a node on a wrote
    const std::string node = node_accesses(a, "proj_writes", {}, {{buf[3], int64_t(bytes)}});
    node_accesses(b, "offload_out", {}, {});
    std::vector<float> out(bytes / 4);
    const cudaError_t e = cudaMemcpyAsync(out.data(), buf[3], bytes, cudaMemcpyDeviceToHost, b);
    const std::string text = e == cudaSuccess ? "" : cudaGetErrorString(e);
    cudaGetLastError();
    report(node.empty() && e != cudaSuccess && contains(text, "proj_writes") && contains(text, "offload_out"),
           "race check: a copy on b reading what a node on a wrote, unordered, is an error", err_text(e) + ": " + text);
  }
  {  // two streams reading the same bytes do not race
    const std::string node = node_accesses(a, "reads_w", {{buf[4], int64_t(bytes)}}, {});
    node_accesses(b, "offload_w", {}, {});
    std::vector<float> out(bytes / 4);
    const cudaError_t e = cudaMemcpyAsync(out.data(), buf[4], bytes, cudaMemcpyDeviceToHost, b);
    report(node.empty() && e == cudaSuccess, "race check: reads on two streams are no race",
           err_text(e) + (e == cudaSuccess ? "" : std::string(": ") + cudaGetErrorString(e)));
    cudaGetLastError();
  }
  {  // the node is the later operation: node_accesses returns the race
    node_accesses(b, "prefetch", {}, {});
    const cudaError_t e = cudaMemcpyAsync(buf[5], host.data(), bytes, cudaMemcpyHostToDevice, b);
    const std::string node = node_accesses(a, "uses_prefetched", {{buf[5], 64}}, {});
    report(e == cudaSuccess && contains(node, "prefetch") && contains(node, "uses_prefetched"),
           "race check: a node reading what an unordered copy on another stream wrote is reported", "node_accesses returned \"" + node + "\"");
  }
  node_accesses(a, "", {}, {});
  must(cudaDeviceSynchronize(), "cudaDeviceSynchronize after the race checks");
  for (float* p : buf) cudaFree(p);
  cudaStreamDestroy(a);
  cudaStreamDestroy(b);
}
#endif

// ---------------------------------------------------------------------------------------------------
// bfloat16

uint32_t bits_of(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}
float float_of(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

// The value of a non-negative float bit pattern, exactly, in double (exponent 255 reads as 2^128: the
// next step up from the largest finite value, which is where rounding to infinity happens).
double magnitude(uint32_t b) {
  const uint32_t e = (b >> 23) & 0xff, m = b & 0x7fffff;
  return e == 0 ? std::ldexp(double(m), -149) : std::ldexp(1.0 + double(m) / 8388608.0, int(e) - 127);
}

// The nearest bfloat16 to f, ties to the even neighbour, from the definition: the two bfloat16 values
// around |f| and their distances. NaN gives a NaN; the exact NaN bits are not compared.
uint16_t ref_bf16_bits(float f) {
  const uint32_t b = bits_of(f), sign = b & 0x80000000u, mag = b & 0x7fffffffu;
  if (mag > 0x7f800000u) return 0x7fc0;
  if (mag == 0x7f800000u) return uint16_t(b >> 16);
  const uint32_t lo = mag & 0xffff0000u, hi = lo + 0x10000u;
  const double x = magnitude(mag), below = x - magnitude(lo), above = magnitude(hi) - x;
  const uint32_t pick = below < above ? lo : above < below ? hi : ((lo >> 16) & 1u) ? hi : lo;
  return uint16_t((sign | pick) >> 16);
}

bool is_bf16_nan(uint16_t h) { return (h & 0x7f80u) == 0x7f80u && (h & 0x7fu) != 0; }

// Converts on the device, as kernels do.
std::vector<uint16_t> device_to_bf16(const std::vector<float>& in) {
  const int n = int(in.size());
  float* d_in = to_device(in);
  __nv_bfloat16* d_out = device_alloc<__nv_bfloat16>(in.size());
  STOW_LAUNCH(to_bf16_kernel, (n + 255) / 256, 256, nullptr)(d_in, d_out, n);
  std::vector<uint16_t> out(in.size());
  must(cudaMemcpy(out.data(), d_out, in.size() * 2, cudaMemcpyDeviceToHost), "cudaMemcpy bf16");
  cudaFree(d_in);
  cudaFree(d_out);
  return out;
}

void check_bf16(const char* reference_file) {
  static_assert(sizeof(__nv_bfloat16) == 2, "bfloat16 is two bytes");
  struct Case {
    uint32_t in;
    uint16_t want;
    const char* what;
  };
  const Case cases[] = {
      {0x3f808000u, 0x3f80, "tie, even below: stays"},
      {0x3f818000u, 0x3f82, "tie, odd below: up to even"},
      {0xbf818000u, 0xbf82, "negative tie, odd below"},
      {0x3f808001u, 0x3f81, "just above a tie: up"},
      {0x3f807fffu, 0x3f80, "just below a tie: down"},
      {0x3f800000u, 0x3f80, "1.0 exactly"},
      {0x00018000u, 0x0002, "subnormal tie: up to even"},
      {0x00008000u, 0x0000, "smallest subnormal tie: down to zero"},
      {0x80000000u, 0x8000, "-0"},
      {0x7f7fffffu, 0x7f80, "FLT_MAX rounds to +inf"},
      {0x7f7f7fffu, 0x7f7f, "below the overflow midpoint: largest finite"},
      {0x7f800000u, 0x7f80, "+inf"},
      {0xff800000u, 0xff80, "-inf"},
  };
  std::vector<float> in;
  for (const Case& c : cases) in.push_back(float_of(c.in));
  const uint32_t nans[] = {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xff800001u, 0x7fffffffu, 0x7f80ffffu};
  for (uint32_t n : nans) in.push_back(float_of(n));
  const std::vector<uint16_t> got = device_to_bf16(in);
  size_t i = 0;
  for (const Case& c : cases) {
    char detail[160];
    std::snprintf(detail, sizeof detail, "0x%08x -> 0x%04x, expected 0x%04x (reference 0x%04x)", c.in, got[i], c.want,
                  ref_bf16_bits(float_of(c.in)));
    report(got[i] == c.want && ref_bf16_bits(float_of(c.in)) == c.want, std::string("__float2bfloat16 ") + c.what, detail);
    i++;
  }
  for (uint32_t n : nans) {
    char detail[96];
    std::snprintf(detail, sizeof detail, "0x%08x -> 0x%04x", n, got[i]);
    report(is_bf16_nan(got[i]), std::string("__float2bfloat16 keeps NaN a NaN: ") + detail, detail);
    i++;
  }
  {  // widening is exact
    std::vector<uint16_t> h = {0x3f81, 0xc2f7, 0x0001, 0x7f7f, 0xff80, 0x8000};
    __nv_bfloat16* d = device_alloc<__nv_bfloat16>(h.size());
    float* f = device_alloc<float>(h.size());
    must(cudaMemcpy(d, h.data(), h.size() * 2, cudaMemcpyHostToDevice), "cudaMemcpy");
    STOW_LAUNCH(from_bf16_kernel, 1, 32, nullptr)(d, f, int(h.size()));
    const std::vector<float> back = to_host(f, h.size());
    std::string bad;
    for (size_t k = 0; k < h.size(); k++)
      if (bits_of(back[k]) != uint32_t(h[k]) << 16) bad = "element " + std::to_string(k);
    report(bad.empty(), "__bfloat162float is exact", bad);
    cudaFree(d);
    cudaFree(f);
  }
  // PyTorch's float -> bfloat16 on random and tie patterns, as an independent reference; the
  // definition-based reference must agree with it too.
  std::ifstream file(reference_file ? reference_file : "");
  std::vector<float> rin;
  std::vector<uint16_t> rwant;
  unsigned long in_bits = 0, want_bits = 0;
  while (file >> std::hex >> in_bits >> want_bits) {
    rin.push_back(float_of(uint32_t(in_bits)));
    rwant.push_back(uint16_t(want_bits));
  }
  if (rin.size() < 1000) {
    report(false, "__float2bfloat16 against PyTorch", "no reference file (--bf16-reference) or too few values: " + std::to_string(rin.size()));
    return;
  }
  const std::vector<uint16_t> rgot = device_to_bf16(rin);
  size_t mismatches = 0, ref_mismatches = 0, ties = 0;
  std::string first;
  for (size_t k = 0; k < rin.size(); k++) {
    const bool nan = is_bf16_nan(rwant[k]);
    if ((bits_of(rin[k]) & 0xffffu) == 0x8000u) ties++;
    const bool ok = nan ? is_bf16_nan(rgot[k]) : rgot[k] == rwant[k];
    const bool ref_ok = nan ? is_bf16_nan(ref_bf16_bits(rin[k])) : ref_bf16_bits(rin[k]) == rwant[k];
    if (!ok && mismatches++ == 0) {
      char text[96];
      std::snprintf(text, sizeof text, "0x%08x -> 0x%04x, PyTorch 0x%04x", bits_of(rin[k]), rgot[k], rwant[k]);
      first = text;
    }
    if (!ref_ok) ref_mismatches++;
  }
  report(mismatches == 0 && ties >= 100, "__float2bfloat16 matches PyTorch on " + std::to_string(rin.size()) + " floats (" +
                                             std::to_string(ties) + " ties)",
         std::to_string(mismatches) + " differ, first " + first);
  report(ref_mismatches == 0, "this file's bfloat16 reference matches PyTorch", std::to_string(ref_mismatches) + " differ");
}

// ---------------------------------------------------------------------------------------------------
// The cuBLAS stand-in against a naive double-precision column-major GEMM

constexpr int kOpN = 0, kOpT = 1, kOpC = 2, kCompute32F = 68, kCompute32FFast16BF = 75, kCompute16F = 64, kGemmDefault = -1;

struct GemmCase {
  int transa, transb, m, n, k, lda, ldb, ldc;
  long long stride_a, stride_b, stride_c;
  int batch;
  float alpha, beta;
  int compute;
  bool nan_c;  // C starts as fresh cudaMalloc memory (NaN) instead of values (only with beta 0)
};

// Runs one case and compares every element of C's buffer: inside the matrices against the reference,
// outside them unchanged. Returns "" or the first mismatch; `fp32_differs` tells whether the result
// differs from the unrounded product by more than the tolerance somewhere (for the bf16 case).
std::string run_gemm(cublasContext* handle, cudaStream_t stream, const GemmCase& g, std::mt19937& rng, bool* fp32_differs = nullptr) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const int a_rows = g.transa == kOpN ? g.m : g.k, a_cols = g.transa == kOpN ? g.k : g.m;
  const int b_rows = g.transb == kOpN ? g.k : g.n, b_cols = g.transb == kOpN ? g.n : g.k;
  const size_t a_size = size_t((g.batch - 1) * g.stride_a + (long long)std::max(a_cols - 1, 0) * g.lda + a_rows) + 5;
  const size_t b_size = size_t((g.batch - 1) * g.stride_b + (long long)std::max(b_cols - 1, 0) * g.ldb + b_rows) + 5;
  const size_t c_size = size_t((g.batch - 1) * g.stride_c + (long long)(g.n - 1) * g.ldc + g.m) + 7;
  std::vector<float> A(a_size), B(b_size), C(c_size);
  for (float& x : A) x = u(rng);
  for (float& x : B) x = u(rng);
  for (float& x : C) x = g.nan_c ? float_of(0xffffffffu) : u(rng);
  float* dA = to_device(A);
  float* dB = to_device(B);
  float* dC = g.nan_c ? device_alloc<float>(c_size) : to_device(C);
  const int status = cublasGemmStridedBatchedEx(handle, g.transa, g.transb, g.m, g.n, g.k, &g.alpha, dA, CUDA_R_32F, g.lda, g.stride_a,
                                                dB, CUDA_R_32F, g.ldb, g.stride_b, &g.beta, dC, CUDA_R_32F, g.ldc, g.stride_c, g.batch,
                                                g.compute, kGemmDefault);
  const cudaError_t synced = cudaStreamSynchronize(stream);
  const std::vector<float> got = to_host(dC, c_size);
  cudaFree(dA);
  cudaFree(dB);
  cudaFree(dC);
  if (status != 0) return "status " + std::to_string(status);
  if (synced != cudaSuccess) return "stream: " + err_text(synced);
  const bool bf16 = g.compute == kCompute32FFast16BF;
  auto in = [&](const std::vector<float>& M, size_t at) { return bf16 ? double(float_of(uint32_t(ref_bf16_bits(M[at])) << 16)) : double(M[at]); };
  std::vector<char> inside(c_size, 0);
  std::string bad;
  if (fp32_differs) *fp32_differs = false;
  for (int i = 0; i < g.batch; i++)
    for (int col = 0; col < g.n; col++)
      for (int row = 0; row < g.m; row++) {
        double sum = 0, sum_abs = 0, sum_fp32 = 0;
        for (int p = 0; p < g.k; p++) {
          const size_t a_at = size_t(i * g.stride_a) + (g.transa == kOpN ? size_t(row) + size_t(p) * g.lda : size_t(p) + size_t(row) * g.lda);
          const size_t b_at = size_t(i * g.stride_b) + (g.transb == kOpN ? size_t(p) + size_t(col) * g.ldb : size_t(col) + size_t(p) * g.ldb);
          sum += in(A, a_at) * in(B, b_at);
          sum_fp32 += double(A[a_at]) * double(B[b_at]);
          sum_abs += std::fabs(in(A, a_at) * in(B, b_at));
        }
        const size_t c_at = size_t(i * g.stride_c) + size_t(row) + size_t(col) * g.ldc;
        inside[c_at] = 1;
        const double c0 = g.beta == 0.0f ? 0.0 : double(C[c_at]);
        const double want = double(g.alpha) * sum + double(g.beta) * c0;
        const double tol = 1e-5 * (std::fabs(g.alpha) * sum_abs + std::fabs(g.beta * c0)) + 1e-6;
        if (fp32_differs && std::fabs(double(got[c_at]) - (double(g.alpha) * sum_fp32 + double(g.beta) * c0)) > tol) *fp32_differs = true;
        if (bad.empty() && !(std::fabs(double(got[c_at]) - want) <= tol))
          bad = "batch " + std::to_string(i) + " C(" + std::to_string(row) + "," + std::to_string(col) + ") = " +
                std::to_string(got[c_at]) + ", expected " + std::to_string(want);
      }
  for (size_t at = 0; at < c_size && bad.empty(); at++)
    if (!inside[at] && bits_of(got[at]) != bits_of(C[at])) bad = "element " + std::to_string(at) + " outside the matrices changed";
  return bad;
}

void check_cublas() {
  cudaStream_t stream;
  must(cudaStreamCreate(&stream), "cudaStreamCreate");
  cublasContext* handle = nullptr;
  if (cublasCreate_v2(&handle) != 0 || cublasSetStream_v2(handle, stream) != 0) {
    report(false, "cublasCreate / cublasSetStream");
    return;
  }
  std::mt19937 rng(5);
  const char* op_name[3] = {"N", "T", "C"};
  for (int ta : {kOpN, kOpT, kOpC})
    for (int tb : {kOpN, kOpT, kOpC}) {
      GemmCase g{ta, tb, 5, 7, 9, 0, 0, 9, 0, 0, 0, 3, 0.75f, -0.5f, kCompute32F, false};
      g.lda = (ta == kOpN ? g.m : g.k) + 3;
      g.ldb = (tb == kOpN ? g.k : g.n) + 2;
      g.stride_a = (long long)g.lda * (ta == kOpN ? g.k : g.m) + 11;
      g.stride_b = (long long)g.ldb * (tb == kOpN ? g.n : g.k) + 4;
      g.stride_c = (long long)g.ldc * g.n + 6;
      const std::string bad = run_gemm(handle, stream, g, rng);
      report(bad.empty(), std::string("cublasGemmStridedBatchedEx op(A)=") + op_name[ta] + " op(B)=" + op_name[tb] +
                              ", padded ld, 3 strided batches, beta -0.5", bad);
    }
  {
    GemmCase g{kOpN, kOpN, 4, 3, 0, 4, 1, 6, 0, 0, 20, 2, 1.0f, 0.5f, kCompute32F, false};
    const std::string bad = run_gemm(handle, stream, g, rng);
    report(bad.empty(), "cublasGemmStridedBatchedEx k = 0: C = beta C", bad);
  }
  {
    GemmCase g{kOpN, kOpN, 4, 3, 0, 4, 1, 4, 0, 0, 12, 1, 1.0f, 0.0f, kCompute32F, true};
    const std::string bad = run_gemm(handle, stream, g, rng);
    report(bad.empty(), "cublasGemmStridedBatchedEx k = 0, beta 0 over NaN C: C = 0", bad);
  }
  {
    GemmCase g{kOpT, kOpN, 6, 4, 5, 5, 5, 6, 30, 20, 24, 2, 1.0f, 0.0f, kCompute32F, true};
    const std::string bad = run_gemm(handle, stream, g, rng);
    report(bad.empty(), "cublasGemmStridedBatchedEx beta 0 ignores NaN in C (fresh cudaMalloc)", bad);
  }
  {
    GemmCase g{kOpN, kOpT, 6, 5, 33, 8, 7, 9, 8 * 33 + 3, 7 * 33, 9 * 5 + 2, 2, 1.0f, 0.5f, kCompute32FFast16BF, false};
    bool differs = false;
    const std::string bad = run_gemm(handle, stream, g, rng, &differs);
    report(bad.empty(), "cublasGemmStridedBatchedEx CUBLAS_COMPUTE_32F_FAST_16BF against bf16-rounded inputs", bad);
    report(differs, "CUBLAS_COMPUTE_32F_FAST_16BF differs from the fp32 product (the inputs were rounded)");
  }
  {
    float* d = device_alloc<float>(4096);
    const float one = 1, zero = 0;
    const int lda_small = cublasGemmStridedBatchedEx(handle, kOpN, kOpN, 5, 4, 3, &one, d, CUDA_R_32F, 4, 0, d, CUDA_R_32F, 3, 0, &zero,
                                                     d + 1024, CUDA_R_32F, 5, 0, 1, kCompute32F, kGemmDefault);
    const int ldb_small = cublasGemmStridedBatchedEx(handle, kOpN, kOpT, 5, 4, 3, &one, d, CUDA_R_32F, 5, 0, d, CUDA_R_32F, 3, 0, &zero,
                                                     d + 1024, CUDA_R_32F, 5, 0, 1, kCompute32F, kGemmDefault);
    const int ldc_small = cublasGemmStridedBatchedEx(handle, kOpN, kOpN, 5, 4, 3, &one, d, CUDA_R_32F, 5, 0, d, CUDA_R_32F, 3, 0, &zero,
                                                     d + 1024, CUDA_R_32F, 4, 0, 1, kCompute32F, kGemmDefault);
    const int compute16 = cublasGemmStridedBatchedEx(handle, kOpN, kOpN, 5, 4, 3, &one, d, CUDA_R_32F, 5, 0, d, CUDA_R_32F, 3, 0, &zero,
                                                     d + 1024, CUDA_R_32F, 5, 0, 1, kCompute16F, kGemmDefault);
    const cudaError_t synced = cudaStreamSynchronize(stream);
    report(lda_small == 7, "cublasGemmStridedBatchedEx lda < m: CUBLAS_STATUS_INVALID_VALUE (7)", "status " + std::to_string(lda_small));
    report(ldb_small == 7, "cublasGemmStridedBatchedEx transposed B with ldb < n: status 7", "status " + std::to_string(ldb_small));
    report(ldc_small == 7, "cublasGemmStridedBatchedEx ldc < m: status 7", "status " + std::to_string(ldc_small));
    report(compute16 == 15, "cublasGemmStridedBatchedEx CUBLAS_COMPUTE_16F: CUBLAS_STATUS_NOT_SUPPORTED (15)", "status " + std::to_string(compute16));
    report(synced == cudaSuccess, "refused GEMMs leave the stream healthy", err_text(synced));
    cudaFree(d);
  }
  cublasDestroy_v2(handle);
  cudaStreamDestroy(stream);
}

// ---------------------------------------------------------------------------------------------------
// Checks whose error is sticky: each runs alone in its process.

// A kernel launched on `stream` hit undefined behaviour: the error must surface at the stream's
// synchronisation, stay (sticky), name the kernel, and stop later work (a fill of `out`, pinned memory).
void expect_kernel_fault(const char* check, const char* kernel, cudaStream_t stream, cudaError_t want, const char* also,
                         int* out) {
  const cudaError_t synced = cudaStreamSynchronize(stream);
  const cudaError_t last = cudaGetLastError(), again = cudaGetLastError();
  const std::string text = cudaGetErrorString(synced);
  report(synced == want && last == want && again == want,
         std::string(check) + ": cudaStreamSynchronize reports " + cudaGetErrorName(want) + ", sticky",
         "synchronize " + err_text(synced) + ", cudaGetLastError " + err_text(last) + " then " + err_text(again));
  report(contains(text, kernel) && contains(text, also), std::string(check) + ": the error message names the kernel and the fault",
         "\"" + text + "\"");
  // Later work does not run: the fill below must not land.
  STOW_LAUNCH(fill_kernel, 1, 32, stream)(out, 5);
  const cudaError_t later = cudaDeviceSynchronize();
  sleep_ms(20);
  const int landed = *static_cast<volatile int*>(out);
  report(later == want && landed != 5, std::string(check) + ": later work does not run; later calls return the error",
         "cudaDeviceSynchronize " + err_text(later) + ", the later kernel's output " + std::to_string(landed));
}

bool run_isolated(const std::string& name) {
  cudaStream_t s;
  if (!must(cudaStreamCreate(&s), "cudaStreamCreate")) return true;
  int* d = device_alloc<int>(64);
  // Later work's target is pinned host memory, which the host reads directly once the context is broken.
  void* pinned_raw = nullptr;
  if (!must(cudaMallocHost(&pinned_raw, 64 * sizeof(int)), "cudaMallocHost")) return true;
  int* later = static_cast<int*>(pinned_raw);
  for (int i = 0; i < 64; i++) later[i] = 0;
  if (name == "mask_leaves_out_caller") {
    STOW_LAUNCH(mask_leaves_out_caller_kernel, 1, 32, s)(d);
    expect_kernel_fault("__shfl_sync whose mask leaves out the calling lane", "mask_leaves_out_caller_kernel", s, cudaErrorLaunchFailure,
                        "0xfffffffe", later);
  } else if (name == "shuffle_waits_for_exited") {
    STOW_LAUNCH(shuffle_waits_for_exited_kernel, 1, 32, s)(d);
    expect_kernel_fault("__shfl_sync waiting for lanes that exit", "shuffle_waits_for_exited_kernel", s, cudaErrorLaunchFailure, "exit", later);
  } else if (name == "shuffle_names_exited") {
    STOW_LAUNCH(shuffle_names_exited_kernel, 1, 32, s)(d);
    expect_kernel_fault("__shfl_sync naming lanes that exited", "shuffle_names_exited_kernel", s, cudaErrorLaunchFailure, "exit", later);
  } else if (name == "barrier_deadlock") {
    STOW_LAUNCH(barrier_deadlock_kernel, 1, 32, s)(d);
    expect_kernel_fault("__syncthreads deadlock (half a warp at the barrier, half at a shuffle)", "barrier_deadlock_kernel", s,
                        cudaErrorLaunchFailure, "__syncthreads", later);
  } else if (name == "calls_after_sticky_error") {
    // After a fault the context is unusable: CUDA returns the sticky error from later calls that use it.
    std::vector<int> pageable(64, 0);
    STOW_LAUNCH(fill_kernel, 2, 32, s)(pageable.data(), 3);
    cudaStreamSynchronize(s);
    void* p = nullptr;
    const cudaError_t malloc_error = cudaMalloc(&p, 256);
    const cudaError_t memset_error = cudaMemset(d, 0, 64);
    report(malloc_error == cudaErrorIllegalAddress, "after an illegal address, cudaMalloc returns the sticky error", err_text(malloc_error));
    report(memset_error == cudaErrorIllegalAddress, "after an illegal address, cudaMemset returns the sticky error", err_text(memset_error));
  } else if (name == "diverged_exchanges") {
    // Not an error: run alone only because the emulation may wrongly fault (a sticky error) on it.
    STOW_LAUNCH(diverged_exchanges_kernel, 1, 32, s)(d);
    const cudaError_t synced = cudaStreamSynchronize(s);
    report(synced == cudaSuccess, "a partial-mask __shfl_sync while the other lanes wait at a full-mask one is legal",
           err_text(synced));
    std::vector<int> h(32, -1);
    cudaMemcpy(h.data(), d, 32 * sizeof(int), cudaMemcpyDeviceToHost);
    std::string bad;
    for (int t = 0; t < 32 && bad.empty(); t++)
      if (h[t] != (t < 16 ? t : 16)) bad = "out[" + std::to_string(t) + "] = " + std::to_string(h[t]);
    report(bad.empty(), "diverged partial-mask and full-mask shuffles give CUDA's values", bad);
  } else if (name == "pageable_host_pointer") {
    std::vector<int> pageable(64, 0);
    STOW_LAUNCH(fill_kernel, 2, 32, s)(pageable.data(), 3);
    expect_kernel_fault("a kernel given pageable host memory", "fill_kernel", s, cudaErrorIllegalAddress, "argument 1", later);
    report(pageable[0] == 0, "a kernel given pageable host memory: does not write it");
    const cudaError_t copy = cudaMemcpy(pageable.data(), d, 4, cudaMemcpyDeviceToHost);
    report(copy == cudaErrorIllegalAddress, "a kernel given pageable host memory: a later cudaMemcpy returns the sticky error", err_text(copy));
  } else {
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const char* bf16_reference = nullptr;
  const char* only = nullptr;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--bf16-reference") == 0) bf16_reference = argv[i + 1];
    if (std::strcmp(argv[i], "--only") == 0) only = argv[i + 1];
  }
  if (only != nullptr) {
    if (!run_isolated(only)) {
      std::fprintf(stderr, "no isolated check named %s\n", only);
      return 2;
    }
  } else {
    check_coords("1-D (grid 7, block 45)", dim3(7), dim3(45));
    check_coords("2-D (grid 3x4, block 8x6)", dim3(3, 4), dim3(8, 6));
    check_coords("3-D (grid 2x3x4, block 4x3x5)", dim3(2, 3, 4), dim3(4, 3, 5));
    check_shared();
    check_warp_intrinsics();
    check_atomics();
    check_launch_errors();
    check_streams();
    check_legacy_stream();
    check_memory();
#ifdef STOW_CUDA_EMULATED
    check_race_checker();
#endif
    check_bf16(bf16_reference);
    check_cublas();
    const cudaError_t end = cudaDeviceSynchronize();
    report(end == cudaSuccess, "no sticky error at the end", err_text(end));
  }
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
