#include "nccl.h"

#include <string>
#include <type_traits>

#include "dynload.h"

#ifdef STOW_CUDA_EMULATED
#include "core/ctx.h"
// The emulated target's stand-ins (emulate/mpi/nccl_standin.cpp), under NCCL's own names. They are
// linked only into builds with MPI (--tp): weak, so a build without them links, and load() says why.
extern "C" {
using stow::cuda::Nccl;
__attribute__((weak)) Nccl::Result ncclGetUniqueId(Nccl::UniqueId*);
__attribute__((weak)) Nccl::Result ncclCommInitRank(Nccl::Comm*, int, Nccl::UniqueId, int);
__attribute__((weak)) Nccl::Result ncclCommDestroy(Nccl::Comm);
__attribute__((weak)) Nccl::Result ncclAllReduce(const void*, void*, size_t, int, int, Nccl::Comm, Nccl::Stream);
__attribute__((weak)) Nccl::Result ncclAllGather(const void*, void*, size_t, int, Nccl::Comm, Nccl::Stream);
__attribute__((weak)) Nccl::Result ncclReduceScatter(const void*, void*, size_t, int, int, Nccl::Comm, Nccl::Stream);
__attribute__((weak)) Nccl::Result ncclBroadcast(const void*, void*, size_t, int, int, Nccl::Comm, Nccl::Stream);
__attribute__((weak)) const char* ncclGetErrorString(Nccl::Result);
}
#endif

namespace stow::cuda {

Nccl Nccl::load() {
#ifdef STOW_CUDA_EMULATED
  if (ncclGetUniqueId == nullptr) throw Error("internal: the emulated NCCL is linked only into builds with MPI (--tp)");
  return {ncclGetUniqueId, ncclCommInitRank, ncclCommDestroy, ncclAllReduce, ncclAllGather, ncclReduceScatter, ncclBroadcast,
          ncclGetErrorString};
#else
  const std::string what = "NCCL (for --tp with --backend cuda)";
  // NCCL is not part of the CUDA toolkit.
  void* lib = open_library(what, {"libnccl.so.2", "libnccl.so"},
                           "Install NVIDIA's wheel (pip install nvidia-nccl-cu12 or nvidia-nccl-cu13: the library goes to a "
                           "site-packages/nvidia/*/lib, nvidia-nccl-cu12's to site-packages/nvidia/nccl/lib) or the libnccl2 "
                           "package, or put its directory in LD_LIBRARY_PATH.");
  auto sym = [&](auto& fn, const char* name) { fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(library_symbol(lib, what, name)); };
  Nccl n{};
  sym(n.get_unique_id, "ncclGetUniqueId");
  sym(n.comm_init_rank, "ncclCommInitRank");
  sym(n.comm_destroy, "ncclCommDestroy");
  sym(n.all_reduce, "ncclAllReduce");
  sym(n.all_gather, "ncclAllGather");
  sym(n.reduce_scatter, "ncclReduceScatter");
  sym(n.broadcast, "ncclBroadcast");
  sym(n.error_string, "ncclGetErrorString");
  return n;
#endif
}

}  // namespace stow::cuda
