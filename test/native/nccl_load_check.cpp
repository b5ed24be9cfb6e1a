// Drives runtime/cuda/nccl.cu (NCCL, loaded at run time for --tp on the CUDA backend) without a GPU:
// loads NCCL and prints "loaded <ncclGetErrorString(0)>", or "error: <message>"; exits 0 either way
// (the test reads the output).
#include <cstdio>

#include "core/ctx.h"
#include "cuda/nccl.h"

int main() {
  try {
    const stow::cuda::Nccl nccl = stow::cuda::Nccl::load();
    std::printf("loaded %s\n", nccl.error_string(0));
  } catch (const stow::Error& e) {
    std::printf("error: %s\n", e.what());
  }
  return 0;
}
