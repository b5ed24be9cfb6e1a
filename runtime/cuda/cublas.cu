#include "cublas.h"

#include <type_traits>

#include "dynload.h"

#ifdef STOW_CUDA_EMULATED
// The emulated target's stand-ins (emulate/cublas_standin.cpp), under cuBLAS's own names.
extern "C" {
stow::cuda::Cublas::Status cublasCreate_v2(stow::cuda::Cublas::Handle*);
stow::cuda::Cublas::Status cublasDestroy_v2(stow::cuda::Cublas::Handle);
stow::cuda::Cublas::Status cublasSetStream_v2(stow::cuda::Cublas::Handle, cudaStream_t);
stow::cuda::Cublas::Status cublasSetWorkspace_v2(stow::cuda::Cublas::Handle, void*, size_t);
stow::cuda::Cublas::Status cublasGemmStridedBatchedEx(stow::cuda::Cublas::Handle, int, int, int, int, int, const void*,
                                                      const void*, cudaDataType, int, long long, const void*, cudaDataType,
                                                      int, long long, const void*, void*, cudaDataType, int, long long, int,
                                                      int, int);
}
#endif

namespace stow::cuda {

Cublas Cublas::load() {
  Cublas b{};
#ifdef STOW_CUDA_EMULATED
  b.create = cublasCreate_v2;
  b.destroy = cublasDestroy_v2;
  b.set_stream = cublasSetStream_v2;
  b.set_workspace = cublasSetWorkspace_v2;
  b.gemm_strided_batched = cublasGemmStridedBatchedEx;
#else
  const std::string what = "cuBLAS";
  void* lib = open_library(what, {"libcublas.so.13", "libcublas.so.12", "libcublas.so"});
  auto sym = [&](auto& fn, const char* name) { fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(library_symbol(lib, what, name)); };
  sym(b.create, "cublasCreate_v2");
  sym(b.destroy, "cublasDestroy_v2");
  sym(b.set_stream, "cublasSetStream_v2");
  sym(b.set_workspace, "cublasSetWorkspace_v2");
  sym(b.gemm_strided_batched, "cublasGemmStridedBatchedEx");
#endif
  return b;
}

}  // namespace stow::cuda
