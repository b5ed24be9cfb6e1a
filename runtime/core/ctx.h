// The execution context every kernel receives: the device arena, the thread count, and the scratch
// memory the plan reserved for the node being run. It also measures what the plan predicts: the arena
// high-water mark is the highest byte any node wrote (output or workspace), so a test can compare the
// planner's prediction with what really happened.
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace stow {

class TransferEngine;
class DiskTier;
namespace cuda {
class Runtime;
}

// Errors meant for the user (bad data, a broken plan); the C ABI turns them into messages.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Comm;

struct Ctx {
  uint8_t* arena = nullptr;      // device arena base
  int64_t arena_bytes = 0;       // its size, from the plan
  uint8_t* host = nullptr;       // host region of offloaded model data (null when it lives in the arena)
  int64_t host_bytes = 0;
  TransferEngine* engine = nullptr;  // copies and host work of offloaded plans (null when nothing is offloaded)
  DiskTier* disk = nullptr;      // model data on disk (null when the plan keeps none there)
  cuda::Runtime* gpu = nullptr;  // the CUDA backend's streams, copies and cuBLAS (null on the CPU backend)
  int threads = 1;               // kernel threads (OpenMP) and BLAS threads
  int64_t high_water = 0;        // highest arena byte written so far (exclusive end offset)

  // Tensor parallelism: this process's rank of `ranks`, the communicator the collective kernels use,
  // and what they did in the current step (calls, and bytes of the whole tensors they combined).
  Comm* comm = nullptr;
  int rank = 0;
  int ranks = 1;
  int64_t comm_calls = 0;
  int64_t comm_bytes = 0;
  // Data parallelism: this process's rank among the replicas of its tensor-parallel rank, and their
  // communicator (null without --dp). Collectives on it count in comm_calls and comm_bytes too.
  Comm* dp_comm = nullptr;
  int dp_rank = 0;
  int dp_ranks = 1;
  // Seconds this step spent waiting for ZeRO's collectives to finish (wait_collective): on the CPU, the
  // part of their time that overlap did not hide (all of it when they block). CUDA's waits do not block
  // the host, so there it stays 0.
  double comm_wait_seconds = 0;

  // Set by generated code before each node: the node's planned workspace and its name for messages.
  int64_t ws_offset = 0;
  int64_t ws_bytes = 0;
  const char* node = "";
  bool host_node = false;        // the node runs on the host side (optimizer on offloaded chunks)

  // Profiling: while node_seconds is set, each node's wall time is added to node_seconds[its position].
  double* node_seconds = nullptr;
  int64_t timed_node = -1;
  std::chrono::steady_clock::time_point timed_since;
  // And, for the measured trace, each node's start and end in this step, in seconds since step_origin,
  // at its position (nodes that run no kernel are never marked).
  double* node_start = nullptr;
  double* node_end = nullptr;
  std::chrono::steady_clock::time_point step_origin;
  // Called by generated code as node `next` starts (-1: the program's nodes are done).
  void mark(int64_t next) {
    if (node_seconds == nullptr) return;
    auto now = std::chrono::steady_clock::now();
    const double at = std::chrono::duration<double>(now - step_origin).count();
    if (timed_node >= 0) {
      node_seconds[timed_node] += std::chrono::duration<double>(now - timed_since).count();
      if (node_end) node_end[timed_node] = at;
    }
    if (next >= 0 && node_start) node_start[next] = at;
    timed_node = next;
    timed_since = now;
  }

  // Marks [ptr, ptr + bytes) as written by the current node. Writes to the host region are not device
  // memory and do not count, and only host-side nodes may make them: a device kernel writing host
  // memory means the plan broke residency.
  void touch(const void* ptr, int64_t bytes) {
    const uint8_t* p = static_cast<const uint8_t*>(ptr);
    if (host != nullptr && p >= host && p < host + host_bytes) {
      if (!host_node) throw Error(std::string("internal: the plan breaks residency: device node ") + node + " writes host memory");
      return;
    }
    int64_t end = p - arena + bytes;
    if (end > high_water) high_water = end;
  }

  // Scratch memory for the current node. Kernels ask for exactly what ir/ops.ts predicts; asking for
  // more than the plan reserved is a planner/kernel disagreement and fails loudly.
  void* workspace(int64_t bytes) {
    if (bytes > ws_bytes)
      throw Error(std::string("internal: node ") + node + " asked for " + std::to_string(bytes) +
                  " workspace bytes but the plan reserved " + std::to_string(ws_bytes));
    uint8_t* p = arena + ws_offset;
    touch(p, bytes);
    return p;
  }
};

}  // namespace stow
