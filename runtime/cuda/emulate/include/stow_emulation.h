// What the emulated CUDA target offers beyond CUDA's API: the race checker's view of a plan's nodes.
// On a GPU the same calls compile to nothing (runtime/cuda/node_uses.cu).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace stow::emu {

struct Range {
  const void* ptr;
  int64_t bytes;
};

// The node `label` is about to queue its work on `stream`: it reads `reads` and writes `writes`. Later
// copies and launches from this host thread are named after it. Returns a description of the race when
// another stream touched one of the ranges with no event ordering it before this node, else "".
std::string node_accesses(cudaStream_t stream, const char* label, const std::vector<Range>& reads,
                          const std::vector<Range>& writes);

}  // namespace stow::emu
