// The part of NCCL the CUDA backend calls for tensor parallelism, declared here from NVIDIA's NCCL
// documentation and resolved at run time (dynload.h), so that building needs neither NCCL's headers nor
// its library, and a --tp 1 run never looks for it. Enumerations are passed as the ints their C enums
// are; streams as CUDA's opaque stream pointer (cudaStream_t), so this header needs no CUDA headers.
#pragma once
#include <cstddef>

namespace stow::cuda {

struct Nccl {
  using Comm = struct ncclComm*;       // ncclComm_t
  using Stream = struct CUstream_st*;  // cudaStream_t
  using Result = int;                  // ncclResult_t; 0 is ncclSuccess
  // ncclUniqueId: the opaque bootstrap handle rank 0 makes and every rank receives (NCCL_UNIQUE_ID_BYTES).
  struct UniqueId {
    char internal[128];
  };
  static constexpr int kUint8 = 1, kFloat32 = 7;  // ncclDataType_t
  static constexpr int kSum = 0, kMax = 2;        // ncclRedOp_t

  Result (*get_unique_id)(UniqueId*);
  Result (*comm_init_rank)(Comm*, int nranks, UniqueId id, int rank);
  Result (*comm_destroy)(Comm);
  Result (*all_reduce)(const void* send, void* recv, size_t count, int type, int op, Comm, Stream);
  Result (*all_gather)(const void* send, void* recv, size_t send_count, int type, Comm, Stream);
  Result (*reduce_scatter)(const void* send, void* recv, size_t recv_count, int type, int op, Comm, Stream);
  Result (*broadcast)(const void* send, void* recv, size_t count, int type, int root, Comm, Stream);
  const char* (*error_string)(Result);

  // Loads libnccl (libnccl.so.2) and resolves the functions above.
  static Nccl load();
};

}  // namespace stow::cuda
