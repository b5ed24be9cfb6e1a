// What the library stand-ins (cuBLAS, NCCL) need from the emulated device: their work queued on a
// stream like a kernel's, and a test of what memory is device memory.
#pragma once
#include <cstddef>
#include <functional>
#include <string>

#include "cuda_runtime.h"

namespace stow::emu {

// Queues `work` on `stream` (after the race check's bookkeeping, like a launch); an exception it throws
// becomes the context's sticky error, "<what>: <message>". Returns an error for an unknown stream.
cudaError_t queue_library_work(cudaStream_t stream, const std::string& what, std::function<void()> work);

// Whether [p, p + bytes) lies inside one cudaMalloc allocation.
bool is_device_range(const void* p, size_t bytes);

// The node the calling host thread is running, for messages ("" outside any).
const std::string& current_node_label();

}  // namespace stow::emu
