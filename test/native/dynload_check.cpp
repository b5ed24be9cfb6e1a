// Drives runtime/cuda/dynload.cu (the CUDA backend's run-time library loading) without a GPU: argv[1]
// is a library file name to open as "the probe library"; prints "loaded <value of probe_value()>" or
// "error: <message>" and exits 0 either way (the test reads the output).
#include <cstdio>

#include "cuda/dynload.h"
#include "core/ctx.h"

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  try {
    void* lib = stow::cuda::open_library("the probe library", {argv[1]});
    auto probe = reinterpret_cast<int (*)()>(stow::cuda::library_symbol(lib, "the probe library", "probe_value"));
    std::printf("loaded %d\n", probe());
  } catch (const stow::Error& e) {
    std::printf("error: %s\n", e.what());
  }
  return 0;
}
