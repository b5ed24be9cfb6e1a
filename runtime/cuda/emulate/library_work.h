// What the library stand-ins (cuBLAS, NCCL) need from the emulated device: their work queued on a
// stream like a kernel's, and a test of what memory is device memory.
#pragma once
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "cuda_runtime.h"
#include "stow_emulation.h"

namespace stow::emu {

// Queues `work` on `stream` (after the race check's bookkeeping, like a launch); an exception it throws
// becomes the context's sticky error, "<what>: <message>". Returns an error for an unknown stream.
cudaError_t queue_library_work(cudaStream_t stream, const std::string& what, std::function<void()> work);

// Library work the host runs itself, at once, as if queued on `stream` (the NCCL stand-in's collectives):
// checks its uses for races as an operation of that stream (a race: its description in *race, and
// nothing waited for), then waits for the stream's earlier work and returns the context's sticky error.
// The host is not counted as having seen the stream, so compute that reads the results must still wait
// for an event recorded after them, as with NCCL.
cudaError_t library_uses(cudaStream_t stream, const std::string& what, const std::vector<Range>& reads, const std::vector<Range>& writes,
                         std::string* race);

// Whether [p, p + bytes) lies inside one cudaMalloc allocation.
bool is_device_range(const void* p, size_t bytes);

// The node the calling host thread is running, for messages ("" outside any).
const std::string& current_node_label();

}  // namespace stow::emu
