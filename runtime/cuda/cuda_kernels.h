// Kernels of the CUDA backend, as the generated plan.cu calls them. Each wrapper checks its arguments,
// marks what it writes (Ctx::touch, as the CPU kernels do, so the measured arena high-water mark is
// comparable with the plan's), and launches its kernel on the compute stream; it returns before the GPU
// has run it. The kernels and their contracts are core/kernel_list.h's, with these differences:
//   - matmul and the fused LM head (linear_cross_entropy) take a precision: fp32 arithmetic, or bf16
//     products with fp32 accumulation (tensor cores); grad_norm and norm_from_squares return the norm
//     (both below, in the list's expansion);
//   - reductions are deterministic run to run, but not bitwise those of the CPU backend (the embedding
//     gradients are: they sort positions on the host, which synchronizes);
//   - a kernel may ask the runtime for scratch memory outside the arena for partial sums (a few MiB),
//     and attention needs no T x T workspace: the planned one goes unused.
// Plain C++: the plan compiles against this header without CUDA types.
#pragma once
#include <cstdint>
#include <initializer_list>

#include "core/ctx.h"
#include "core/kernel_types.h"

namespace stow::cuda {

enum Precision : int { FP32 = 0, BF16 = 1 };

// What the node about to run reads and writes in the arena, declared by generated code before its
// kernels. The emulated target's race checker holds it against the copy streams' work (a missing event
// wait is an error naming both nodes); on a GPU it does nothing. It also names the node in the
// emulation's messages, so copies and waiting nodes declare themselves with no ranges.
struct ArenaRange {
  const void* ptr;
  int64_t bytes;
};
void node_uses(Ctx& c, std::initializer_list<ArenaRange> reads, std::initializer_list<ArenaRange> writes);

// Head size D at most kMaxHeadDim (attention_fwd, attention_bwd).
constexpr int64_t kMaxHeadDim = 256;

// Every kernel of core/kernel_list.h, as a launch wrapper. The two ways the signatures differ from the
// CPU's, said once here: products (STOW_GEMM_KERNEL: matmul and the fused LM head) take the GEMM
// precision last, and norms (STOW_NORM_KERNEL: grad_norm, and norm_from_squares under --tp) return the
// norm to the host, which synchronizes: clipping needs it before any update, and generated code never
// reads the arena, which is GPU memory. Tensor parallelism's collectives run on the context's
// communicator, NCCL under --tp (comm_nccl.h), queued on the compute stream; token and target ids are
// checked on the host before they reach the device. Copies run on the copy streams, ordered after the
// compute queued before them; wait_transfer makes later compute wait for one (the host does not block);
// drain_transfers ends a program that moves model data (the host waits for compute, copies and host
// AdamW). adamw_on_host runs the CPU backend's adamw (cpu/kernels_adamw.cpp) on an offloaded chunk's
// host copies, on the host worker, using every host thread (the GPU computes).
#define STOW_KERNEL_PARAMS(...) __VA_ARGS__
#define STOW_KERNEL(name, ret, params) ret name params;
#define STOW_GEMM_KERNEL(name, params) void name(STOW_KERNEL_PARAMS params, Precision precision);
#define STOW_NORM_KERNEL(name, params) float name params;
#include "core/kernel_list.h"
#undef STOW_KERNEL_PARAMS

}  // namespace stow::cuda
