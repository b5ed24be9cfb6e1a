// The NCCL functions the CUDA backend calls under --tp and --dp (runtime/cuda/nccl.h), for the emulated
// target only, over MPI: the ranks of a communicator are those of MPI_COMM_WORLD handed the same unique
// id (a communicator split from it, so that the collectives never meet the host communicator's
// messages), and ncclCommInitRank checks that they are as many as it was told. Arguments are validated
// as NCCL validates them (device buffers, types, operations, the root), with NCCL's result codes.
//
// A collective runs when it is called: the host waits for the stream's earlier work, then makes the
// MPI call on the device buffers (ordinary memory here). The race checker sees it as an operation of
// that stream reading the send buffer and writing the receive buffer, as NCCL's queued kernel would,
// and the host's waiting is not counted as ordering anything: compute on another stream that reads
// the result without waiting for an event recorded after the collective is reported as a race.
// Without the deprecated C++ bindings, whose headers do not compile cleanly under -Wextra.
#define OMPI_SKIP_MPICXX 1
#include <mpi.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "library_work.h"

namespace {

constexpr int kSuccess = 0, kSystemError = 2, kInvalidArgument = 4, kInvalidUsage = 5;
constexpr char kMagic[] = "stowage emulated NCCL id";

struct UniqueId {
  char internal[128];
};

thread_local std::string last_message;

int refuse(int result, const std::string& why) {
  last_message = why;
  return result;
}

// ncclDataType_t to its MPI type and size.
bool mpi_type(int type, MPI_Datatype* t, size_t* size) {
  switch (type) {
    case 0: *t = MPI_INT8_T; *size = 1; return true;    // ncclInt8
    case 1: *t = MPI_UINT8_T; *size = 1; return true;   // ncclUint8
    case 2: *t = MPI_INT32_T; *size = 4; return true;   // ncclInt32
    case 3: *t = MPI_UINT32_T; *size = 4; return true;  // ncclUint32
    case 4: *t = MPI_INT64_T; *size = 8; return true;   // ncclInt64
    case 5: *t = MPI_UINT64_T; *size = 8; return true;  // ncclUint64
    case 7: *t = MPI_FLOAT; *size = 4; return true;     // ncclFloat32
    case 8: *t = MPI_DOUBLE; *size = 8; return true;    // ncclFloat64
    default: return false;                              // fp16 and bf16 are not emulated
  }
}

bool mpi_op(int op, MPI_Op* o) {
  switch (op) {
    case 0: *o = MPI_SUM; return true;   // ncclSum
    case 1: *o = MPI_PROD; return true;  // ncclProd
    case 2: *o = MPI_MAX; return true;   // ncclMax
    case 3: *o = MPI_MIN; return true;   // ncclMin
    default: return false;               // ncclAvg and custom operations are not emulated
  }
}

}  // namespace

struct ncclComm {
  MPI_Comm mpi;
  int rank, ranks;
};

namespace {

using Buffer = std::pair<const void*, size_t>;  // a pointer and its elements

// Checks a collective's common arguments and its buffers' uses on the stream, then waits for the
// stream's earlier work.
int prepare(const char* name, ncclComm* comm, int type, MPI_Datatype* t, size_t* size, cudaStream_t stream, Buffer send, Buffer recv) {
  if (comm == nullptr) return refuse(kInvalidArgument, std::string(name) + ": null communicator");
  if (!mpi_type(type, t, size)) return refuse(kInvalidArgument, std::string(name) + ": data type " + std::to_string(type) + " is not emulated");
  for (const auto& [p, elements] : {send, recv})
    if (elements > 0 && !stow::emu::is_device_range(p, elements * *size))
      return refuse(kInvalidArgument, std::string(name) + ": a buffer is not device memory (node " + stow::emu::current_node_label() + ")");
  std::vector<stow::emu::Range> reads, writes;
  if (send.second > 0) reads.push_back({send.first, int64_t(send.second * *size)});
  if (recv.second > 0) writes.push_back({recv.first, int64_t(recv.second * *size)});
  std::string race;
  if (stow::emu::library_uses(stream, name, reads, writes, &race) != cudaSuccess)
    return refuse(1, std::string(name) + ": the stream failed before it");  // ncclUnhandledCudaError
  if (!race.empty()) return refuse(kInvalidUsage, race);
  return kSuccess;
}

int mpi_result(const char* name, int code) {
  if (code == MPI_SUCCESS) return kSuccess;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  return refuse(kSystemError, std::string(name) + ": " + std::string(text, size_t(length)));
}

}  // namespace

extern "C" int ncclGetUniqueId(UniqueId* id) {
  if (id == nullptr) return refuse(kInvalidArgument, "ncclGetUniqueId: null id");
  std::memset(id->internal, 0, sizeof id->internal);
  std::memcpy(id->internal, kMagic, sizeof kMagic);
  std::random_device random;
  for (size_t i = sizeof kMagic; i < sizeof id->internal; i++) id->internal[i] = char(random());
  return kSuccess;
}

extern "C" int ncclCommInitRank(ncclComm** comm, int nranks, UniqueId id, int rank) {
  if (comm == nullptr || nranks < 1 || rank < 0 || rank >= nranks) return refuse(kInvalidArgument, "ncclCommInitRank: bad arguments");
  if (std::memcmp(id.internal, kMagic, sizeof kMagic) != 0)
    return refuse(kInvalidArgument, "ncclCommInitRank: the unique id did not come from ncclGetUniqueId");
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) return refuse(kSystemError, "ncclCommInitRank: the emulated NCCL runs over MPI, which is not initialised");
  // The ranks holding one id form one communicator (a tensor- or data-parallel group, or the whole job):
  // MPI_COMM_WORLD split by a hash of the id, ordered by the rank each was given. The split is collective
  // over the whole job, so every process must make the same sequence of calls, which the runtime does.
  uint64_t hash = 1469598103934665603ull;
  for (char ch : id.internal) hash = (hash ^ uint8_t(ch)) * 1099511628211ull;
  MPI_Comm group = MPI_COMM_NULL;
  MPI_Comm_split(MPI_COMM_WORLD, int(hash & 0x7fffffff), rank, &group);
  int group_rank = 0, group_size = 0;
  MPI_Comm_rank(group, &group_rank);
  MPI_Comm_size(group, &group_size);
  if (group_size != nranks || group_rank != rank) {
    MPI_Comm_free(&group);
    return refuse(kInvalidUsage, "ncclCommInitRank: rank " + std::to_string(rank) + " of " + std::to_string(nranks) + " found " +
                                     std::to_string(group_size) + " ranks holding its unique id (were the ranks handed different ids?)");
  }
  *comm = new ncclComm{group, rank, nranks};
  return kSuccess;
}

extern "C" int ncclCommDestroy(ncclComm* comm) {
  if (comm == nullptr) return refuse(kInvalidArgument, "ncclCommDestroy: null communicator");
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Comm_free(&comm->mpi);
  delete comm;
  return kSuccess;
}

extern "C" int ncclAllReduce(const void* send, void* recv, size_t count, int type, int op, ncclComm* comm, cudaStream_t stream) {
  MPI_Datatype t;
  MPI_Op o;
  size_t size = 0;
  if (!mpi_op(op, &o)) return refuse(kInvalidArgument, "ncclAllReduce: operation " + std::to_string(op) + " is not emulated");
  if (int r = prepare("ncclAllReduce", comm, type, &t, &size, stream, {send, count}, {recv, count}); r != kSuccess) return r;
  return mpi_result("ncclAllReduce", MPI_Allreduce(send == recv ? MPI_IN_PLACE : send, recv, int(count), t, o, comm->mpi));
}

extern "C" int ncclAllGather(const void* send, void* recv, size_t send_count, int type, ncclComm* comm, cudaStream_t stream) {
  MPI_Datatype t;
  size_t size = 0;
  if (int r = prepare("ncclAllGather", comm, type, &t, &size, stream, {send, send_count}, {recv, send_count * size_t(comm ? comm->ranks : 1)}); r != kSuccess)
    return r;
  const bool in_place = static_cast<const char*>(send) == static_cast<char*>(recv) + size_t(comm->rank) * send_count * size;
  return mpi_result("ncclAllGather", MPI_Allgather(in_place ? MPI_IN_PLACE : send, int(send_count), t, recv, int(send_count), t, comm->mpi));
}

extern "C" int ncclReduceScatter(const void* send, void* recv, size_t recv_count, int type, int op, ncclComm* comm,
                                 cudaStream_t stream) {
  MPI_Datatype t;
  MPI_Op o;
  size_t size = 0;
  if (!mpi_op(op, &o)) return refuse(kInvalidArgument, "ncclReduceScatter: operation " + std::to_string(op) + " is not emulated");
  if (int r = prepare("ncclReduceScatter", comm, type, &t, &size, stream, {send, recv_count * size_t(comm ? comm->ranks : 1)}, {recv, recv_count});
      r != kSuccess)
    return r;
  // In place (recv is this rank's block of send) is legal for NCCL; MPI takes it as MPI_IN_PLACE with the
  // whole buffer in recv, so copy the block out instead.
  std::vector<char> block(recv_count * size);
  const int code = MPI_Reduce_scatter_block(send, block.data(), int(recv_count), t, o, comm->mpi);
  std::memcpy(recv, block.data(), block.size());
  return mpi_result("ncclReduceScatter", code);
}

extern "C" int ncclBroadcast(const void* send, void* recv, size_t count, int type, int root, ncclComm* comm, cudaStream_t stream) {
  MPI_Datatype t;
  size_t size = 0;
  if (comm != nullptr && (root < 0 || root >= comm->ranks)) return refuse(kInvalidArgument, "ncclBroadcast: root " + std::to_string(root) + " out of range");
  const bool root_here = comm != nullptr && comm->rank == root;
  if (int r = prepare("ncclBroadcast", comm, type, &t, &size, stream, {root_here ? send : nullptr, root_here ? count : 0}, {recv, count}); r != kSuccess)
    return r;
  if (root_here && send != recv) std::memcpy(recv, send, count * size);
  return mpi_result("ncclBroadcast", MPI_Bcast(recv, int(count), t, root, comm->mpi));
}

extern "C" const char* ncclGetErrorString(int result) {
  static thread_local std::string text;
  const char* name = result == kSuccess ? "no error" : result == 1 ? "unhandled cuda error" : result == kSystemError ? "unhandled system error"
                     : result == kInvalidArgument ? "invalid argument" : result == kInvalidUsage ? "invalid usage" : "internal error";
  text = std::string(name) + (last_message.empty() ? "" : " (emulated NCCL: " + last_message + ")");
  return text.c_str();
}
