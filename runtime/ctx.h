// The execution context every kernel receives: the device arena, the thread count, and the scratch
// memory the plan reserved for the node being run. It also measures what the plan predicts: the arena
// high-water mark is the highest byte any node wrote (output or workspace), so a test can compare the
// planner's prediction with what really happened.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace stow {

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
  int64_t h2d_bytes = 0;         // bytes copied host to device and back, counted by the copy kernels
  int64_t d2h_bytes = 0;
  int threads = 1;               // kernel threads (OpenMP) and BLAS threads
  int64_t high_water = 0;        // highest arena byte written so far (exclusive end offset)

  // Tensor parallelism: this process's rank of `ranks`, the communicator the collective kernels use,
  // and what they did in the current step (calls, and bytes of the whole tensors they combined).
  Comm* comm = nullptr;
  int rank = 0;
  int ranks = 1;
  int64_t comm_calls = 0;
  int64_t comm_bytes = 0;

  // Set by generated code before each node: the node's planned workspace and its name for messages.
  int64_t ws_offset = 0;
  int64_t ws_bytes = 0;
  const char* node = "";

  // Marks [ptr, ptr + bytes) as written by the current node. Writes to the host region are not device
  // memory and do not count.
  void touch(const void* ptr, int64_t bytes) {
    const uint8_t* p = static_cast<const uint8_t*>(ptr);
    if (host != nullptr && p >= host && p < host + host_bytes) return;
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
