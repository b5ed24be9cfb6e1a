// Libraries the CUDA backend loads at run time (dlopen) rather than links: cuBLAS now, NCCL for tensor
// parallelism later. The binary then builds with nvcc and the CUDA runtime alone, and a machine without
// the library fails with a message that says what was searched, not at load time with a linker error.
#pragma once
#include <string>
#include <vector>

namespace stow::cuda {

// Opens the first of `sonames` (e.g. libcublas.so.13) found: by the dynamic loader's own search
// (LD_LIBRARY_PATH, the ld.so cache), then in $CUDA_HOME/lib64, /usr/local/cuda/lib64, the system's
// library directories, and the lib/ folders of NVIDIA's Python wheels (site-packages/nvidia/*/lib) under
// the Python prefixes of the environment. Throws stow::Error naming `what`, the names, every place
// searched and, last, `install`: how to get the library.
void* open_library(const std::string& what, const std::vector<std::string>& sonames,
                   const std::string& install = "Install it with the CUDA toolkit or NVIDIA's Python wheel, or put its "
                                                "directory in LD_LIBRARY_PATH.");

// The address of `name` in `library`; throws stow::Error naming both when it is missing.
void* library_symbol(void* library, const std::string& what, const char* name);

}  // namespace stow::cuda
