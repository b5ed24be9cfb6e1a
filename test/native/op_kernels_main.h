// The driver of test/system/op_kernels.test.ts, pasted by the test after the cases it generates (so it
// is part of the source the build caches by content). Before it come kCases, the case functions (each
// runs one tiny graph's nodes, as the backend's generated code runs a program's), kCaseCount,
// kCaseNames, and, for the CUDA backend, STOW_OPK_CUDA.
//
// Usage: op_kernels IN OUT. IN holds, per case, int64 arena bytes, int64 host bytes, then the arena's
// and the host region's contents (the inputs at their offsets); OUT gets the same images after the case
// ran and every copy and host task it started has finished. Prints "ok <case>" or "error <case>:
// <message>" per case. One process runs every case: the build, not the run, is the cost.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include "comm/comm.h"
#ifdef STOW_OPK_CUDA
#include <cuda_runtime.h>

#include "cuda/runtime.h"
#else
#include "core/transfer_engine.h"
#endif

namespace {

bool read_exact(FILE* f, void* data, size_t bytes) { return bytes == 0 || std::fread(data, 1, bytes, f) == bytes; }

// 64-byte aligned, as the runtime's arena is; at least one line, so a case with no host data has a pointer.
struct Region {
  explicit Region(int64_t bytes) : bytes(bytes), data(static_cast<uint8_t*>(std::aligned_alloc(64, size_t((bytes + 127) / 64 * 64)))) {}
  ~Region() { std::free(data); }
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;
  int64_t bytes;
  uint8_t* data;
};

#ifdef STOW_OPK_CUDA
void cuda_ok(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

// The case on the device: the arena in device memory, the host region pinned, as the CUDA device has them.
void run_case(int i, stow::Ctx& c, const stow::StepArgs& args, Region& arena, Region& host) {
  static stow::cuda::Runtime rt(2);
  void* device = nullptr;
  void* pinned = nullptr;
  cuda_ok(cudaMalloc(&device, size_t(arena.bytes)), "cudaMalloc");
  cuda_ok(cudaMallocHost(&pinned, size_t(host.bytes + 64)), "cudaMallocHost");
  try {
    cuda_ok(cudaMemcpy(device, arena.data, size_t(arena.bytes), cudaMemcpyHostToDevice), "cudaMemcpy to the arena");
    std::memcpy(pinned, host.data, size_t(host.bytes));
    c.arena = static_cast<uint8_t*>(device);
    c.host = static_cast<uint8_t*>(pinned);
    c.gpu = &rt;
    kCases[i](c, args);
    stow::cuda::drain_transfers(c);
    cuda_ok(cudaDeviceSynchronize(), "the case's kernels");
    cuda_ok(cudaMemcpy(arena.data, device, size_t(arena.bytes), cudaMemcpyDeviceToHost), "cudaMemcpy from the arena");
    std::memcpy(host.data, pinned, size_t(host.bytes));
  } catch (...) {
    cudaFree(device);
    cudaFreeHost(pinned);
    throw;
  }
  cudaFree(device);
  cudaFreeHost(pinned);
}
#else
// The case on the CPU: the arena and the host region are ordinary memory; copies and host AdamW go
// through a transfer engine, as on the CPU device.
void run_case(int i, stow::Ctx& c, const stow::StepArgs& args, Region& arena, Region& host) {
  static stow::TransferEngine engine(0, 2);
  c.arena = arena.data;
  c.host = host.data;
  c.engine = &engine;
  kCases[i](c, args);
  stow::drain_transfers(c);
}
#endif

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s IN OUT\n", argv[0]);
    return 2;
  }
  FILE* in = std::fopen(argv[1], "rb");
  FILE* out = std::fopen(argv[2], "wb");
  if (in == nullptr || out == nullptr) {
    std::fprintf(stderr, "cannot open %s or %s\n", argv[1], argv[2]);
    return 2;
  }
  // AdamW's hyperparameters (test/system/op_kernels.test.ts gives the reference the same); no clipping.
  const stow::StepArgs args{{1e-2f, 0.9f, 0.999f, 1e-8f, 0.1f, 3}, 0.0f};
  for (int i = 0; i < kCaseCount; i++) {
    int64_t sizes[2];
    if (!read_exact(in, sizes, sizeof sizes)) {
      std::fprintf(stderr, "%s ends before case %d\n", argv[1], i);
      return 2;
    }
    Region arena(sizes[0]), host(sizes[1]);
    if (!read_exact(in, arena.data, size_t(arena.bytes)) || !read_exact(in, host.data, size_t(host.bytes))) {
      std::fprintf(stderr, "%s ends inside case %d\n", argv[1], i);
      return 2;
    }
    stow::Ctx c;
    c.arena_bytes = arena.bytes;
    c.host_bytes = host.bytes;
    c.threads = 2;
    c.comm = &stow::process_comm();
    c.rank = 0;
    c.ranks = 1;
    try {
      run_case(i, c, args, arena, host);
      std::printf("ok %s\n", kCaseNames[i]);
    } catch (const std::exception& e) {
      std::printf("error %s: %s\n", kCaseNames[i], e.what());
    }
    std::fflush(stdout);
    std::fwrite(sizes, sizeof sizes, 1, out);
    std::fwrite(arena.data, 1, size_t(arena.bytes), out);
    std::fwrite(host.data, 1, size_t(host.bytes), out);
  }
  std::fclose(in);
  std::fclose(out);
  // Skip static destructors: the emulation's stream threads may still hold its state.
  std::fflush(stdout);
  std::_Exit(0);
}
