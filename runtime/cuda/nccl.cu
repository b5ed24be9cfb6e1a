#include "nccl.h"

#include <string>
#include <type_traits>

#include "dynload.h"

namespace stow::cuda {

Nccl Nccl::load() {
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
}

}  // namespace stow::cuda
