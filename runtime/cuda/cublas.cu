#include "cublas.h"

#include "dynload.h"

namespace stow::cuda {

Cublas Cublas::load() {
  const std::string what = "cuBLAS";
  void* lib = open_library(what, {"libcublas.so.13", "libcublas.so.12", "libcublas.so"});
  auto sym = [&](auto& fn, const char* name) { fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(library_symbol(lib, what, name)); };
  Cublas b{};
  sym(b.create, "cublasCreate_v2");
  sym(b.destroy, "cublasDestroy_v2");
  sym(b.set_stream, "cublasSetStream_v2");
  sym(b.set_workspace, "cublasSetWorkspace_v2");
  sym(b.gemm_strided_batched, "cublasGemmStridedBatchedEx");
  return b;
}

}  // namespace stow::cuda
