// The emulated CUDA target's stand-in for <cuda_runtime.h>: what runtime/cuda/*.cu and the generated
// plan.cu use of the CUDA runtime API and of the kernel language, with CUDA's semantics, for g++ on the
// CPU. A build with --emulate puts this directory first on the include path, so the same sources that
// nvcc compiles for the GPU compile here unchanged, except for kernel launches, which go through
// STOW_LAUNCH (runtime/cuda/launch.h) because g++ cannot parse <<<...>>>.
//
// - Kernels run on fibers (kernel_exec.cpp): one fiber per CUDA thread, a block's fibers on one OS
//   thread, blocks spread over OS threads. __syncthreads and the warp intrinsics switch fibers, so a
//   block's threads meet at barriers and a warp's 32 lanes exchange values in lock-step.
// - __shared__ is a thread_local static: every fiber of a block runs on one OS thread, which runs one
//   block at a time, so the block's threads share it and other blocks (on other OS threads) do not.
// - Streams are in-order queues, each drained by its own OS thread, so they run concurrently with each
//   other and with the host; events order them (device_api.cpp). Every operation is checked for races
//   against the other streams (race_check.h).
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "library_types.h"

#ifndef STOW_CUDA_EMULATED
#define STOW_CUDA_EMULATED 1  // the build also defines it, for sources that include no CUDA header
#endif

// ---- Kernel language -------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static thread_local
#define __constant__ static
#define __launch_bounds__(...)

struct uint3 {
  unsigned x, y, z;
};

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};

namespace stow::emu {

// Where the calling CUDA thread is in its launch. Out of line: a fiber switch inside __syncthreads or
// a shuffle changes the answer, so the compiler must not keep it across those calls.
struct ThreadCoords {
  uint3 thread_idx, block_idx;
  dim3 block_dim, grid_dim;
};
const ThreadCoords& coords();

// The warp's exchange: every lane of `mask` deposits `bits`; once all have, each gets all 32 deposits
// (lanes outside the mask read as 0). The calling lane must be in the mask.
void warp_exchange(unsigned mask, uint64_t bits, uint64_t (&all)[32], const char* what);
unsigned lane_id();

template <class T>
uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= 8, "warp intrinsics exchange at most 8 bytes");
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <class T>
T from_bits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}
// A shuffle read of a lane outside the mask is undefined on the GPU; here it is an error.
void check_source_lane(unsigned mask, int lane, const char* what);

}  // namespace stow::emu

#define threadIdx (::stow::emu::coords().thread_idx)
#define blockIdx (::stow::emu::coords().block_idx)
#define blockDim (::stow::emu::coords().block_dim)
#define gridDim (::stow::emu::coords().grid_dim)
#define warpSize 32

void __syncthreads();
void __syncwarp(unsigned mask = 0xffffffffu);
void __threadfence();
unsigned __activemask();

template <class T>
T __shfl_sync(unsigned mask, T var, int src_lane, int width = 32) {
  uint64_t all[32];
  stow::emu::warp_exchange(mask, stow::emu::to_bits(var), all, "__shfl_sync");
  const int lane = int(stow::emu::lane_id());
  const int src = (lane & ~(width - 1)) + (src_lane & (width - 1));
  stow::emu::check_source_lane(mask, src, "__shfl_sync");
  return stow::emu::from_bits<T>(all[src]);
}

template <class T>
T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = 32) {
  uint64_t all[32];
  stow::emu::warp_exchange(mask, stow::emu::to_bits(var), all, "__shfl_xor_sync");
  const int lane = int(stow::emu::lane_id());
  const int src = lane ^ lane_mask;
  // A source past the end of the caller's segment gives the caller's own value; earlier segments can
  // be read (PTX shfl.bfly: the source is valid when it is at most the segment's last lane).
  if (src > (lane | (width - 1))) return var;
  stow::emu::check_source_lane(mask, src, "__shfl_xor_sync");
  return stow::emu::from_bits<T>(all[src]);
}

template <class T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = 32) {
  uint64_t all[32];
  stow::emu::warp_exchange(mask, stow::emu::to_bits(var), all, "__shfl_down_sync");
  const int lane = int(stow::emu::lane_id());
  const int src = lane + int(delta);
  if (src / width != lane / width || src >= 32) return var;
  stow::emu::check_source_lane(mask, src, "__shfl_down_sync");
  return stow::emu::from_bits<T>(all[src]);
}

template <class T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = 32) {
  uint64_t all[32];
  stow::emu::warp_exchange(mask, stow::emu::to_bits(var), all, "__shfl_up_sync");
  const int lane = int(stow::emu::lane_id());
  const int src = lane - int(delta);
  if (src < 0 || src / width != lane / width) return var;
  stow::emu::check_source_lane(mask, src, "__shfl_up_sync");
  return stow::emu::from_bits<T>(all[src]);
}

unsigned __ballot_sync(unsigned mask, int predicate);
int __all_sync(unsigned mask, int predicate);
int __any_sync(unsigned mask, int predicate);

// Device math the kernels may call by its CUDA name.
inline float __int_as_float(int v) { return stow::emu::from_bits<float>(uint64_t(uint32_t(v))); }
inline int __float_as_int(float v) { return int(uint32_t(stow::emu::to_bits(v))); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }

// Atomics: blocks run on several OS threads at once, so these are real atomic operations.
int atomicAdd(int* address, int val);
unsigned atomicAdd(unsigned* address, unsigned val);
unsigned long long atomicAdd(unsigned long long* address, unsigned long long val);
float atomicAdd(float* address, float val);
double atomicAdd(double* address, double val);
int atomicMax(int* address, int val);
unsigned atomicMax(unsigned* address, unsigned val);
int atomicMin(int* address, int val);
unsigned atomicMin(unsigned* address, unsigned val);
int atomicExch(int* address, int val);
unsigned atomicExch(unsigned* address, unsigned val);
float atomicExch(float* address, float val);
int atomicCAS(int* address, int compare, int val);
unsigned atomicCAS(unsigned* address, unsigned compare, unsigned val);
unsigned long long atomicCAS(unsigned long long* address, unsigned long long compare, unsigned long long val);

// ---- Runtime API -----------------------------------------------------------------------------------
enum cudaError {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorInvalidMemcpyDirection = 21,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorNotReady = 600,
  cudaErrorIllegalAddress = 700,
  cudaErrorHostMemoryAlreadyRegistered = 712,
  cudaErrorHostMemoryNotRegistered = 713,
  cudaErrorLaunchFailure = 719,
  cudaErrorUnknown = 999,
};
typedef enum cudaError cudaError_t;

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};

typedef struct CUstream_st* cudaStream_t;
typedef struct CUevent_st* cudaEvent_t;

#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01
#define cudaEventDefault 0x00
#define cudaEventBlockingSync 0x01
#define cudaEventDisableTiming 0x02
#define cudaHostRegisterDefault 0x00
#define cudaHostRegisterPortable 0x01
#define cudaHostRegisterMapped 0x02
#define cudaStreamLegacy ((cudaStream_t)0x1)

const char* cudaGetErrorString(cudaError_t error);
const char* cudaGetErrorName(cudaError_t error);
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();

cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaMemGetInfo(size_t* free, size_t* total);

cudaError_t cudaMalloc(void** ptr, size_t bytes);
cudaError_t cudaFree(void* ptr);
cudaError_t cudaMallocHost(void** ptr, size_t bytes);
cudaError_t cudaFreeHost(void* ptr);
cudaError_t cudaHostRegister(void* ptr, size_t bytes, unsigned flags);
cudaError_t cudaHostUnregister(void* ptr);
cudaError_t cudaMemset(void* ptr, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t stream = nullptr);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream = nullptr);

cudaError_t cudaStreamCreate(cudaStream_t* stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamQuery(cudaStream_t stream);
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags = 0);

cudaError_t cudaEventCreate(cudaEvent_t* event);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = nullptr);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventQuery(cudaEvent_t event);

// ---- Launches ----------------------------------------------------------------------------------------
namespace stow::emu {

// Queues `grid` x `block` threads running `body` on `stream`. A bad configuration is the launch's error
// (cudaGetLastError), as on the GPU; an error while the kernel runs is sticky, reported by later calls.
void launch(const char* kernel, dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
            std::function<void()> body, std::vector<std::pair<const void*, int>> pointer_args);

template <class T>
void collect_pointer(std::vector<std::pair<const void*, int>>& out, int index, const T& value) {
  if constexpr (std::is_pointer_v<T>) out.emplace_back(static_cast<const void*>(value), index);
}

// kernel<<<grid, block, shared, stream>>>(args...), spelled STOW_LAUNCH(kernel, grid, block,
// stream)(args...): the arguments are evaluated and copied at the launch, as CUDA does; `invoke` calls
// the kernel by name, so a kernel template deduces its parameters from them as in a launch.
template <class Invoke>
struct Launcher {
  const char* name;
  dim3 grid, block;
  size_t shared_bytes;
  cudaStream_t stream;
  Invoke invoke;

  template <class... Args>
  void operator()(Args&&... args) const {
    std::tuple<std::decay_t<Args>...> copied(std::forward<Args>(args)...);
    std::vector<std::pair<const void*, int>> pointers;
    std::apply([&](const auto&... a) {
      int i = 0;
      (collect_pointer(pointers, i++, a), ...);
    }, copied);
    launch(name, grid, block, shared_bytes, stream, [f = invoke, copied] { std::apply(f, copied); }, std::move(pointers));
  }
};

template <class Invoke>
Launcher<Invoke> launcher(const char* name, dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream, Invoke invoke) {
  return {name, grid, block, shared_bytes, stream, invoke};
}

}  // namespace stow::emu

#include "stow_emulation.h"
