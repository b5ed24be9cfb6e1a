// The part of the emulated CUDA target that runs a grid (kernel_exec.cpp), for the stream that
// launches it (device_api.cpp).
#pragma once
#include <functional>
#include <stdexcept>

#include "cuda_runtime.h"

namespace stow::emu {

// Undefined behaviour in a kernel (a bad warp mask, threads that can never meet): the launch fails.
struct KernelFault : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Runs body once per CUDA thread of the grid, each block's threads on fibers of one OS thread, blocks
// on several OS threads; returns when all have exited. Throws KernelFault.
void run_grid(const char* kernel, dim3 grid, dim3 block, const std::function<void()>& body);

}  // namespace stow::emu
