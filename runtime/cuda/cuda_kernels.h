// Kernels of the CUDA backend, as the generated plan.cu calls them. Each wrapper checks its arguments,
// marks what it writes (Ctx::touch, as the CPU kernels do, so the measured arena high-water mark is
// comparable with the plan's), and launches its kernel on the compute stream; it returns before the GPU
// has run it. The contracts are those of runtime/cpu/kernels.h, with these differences:
//   - matmul and the fused LM head (linear_cross_entropy) take a precision: fp32 arithmetic, or bf16
//     products with fp32 accumulation (tensor cores);
//   - grad_norm returns the norm to the host (it synchronizes: clipping needs it before any update);
//   - reductions are deterministic run to run, but not bitwise those of the CPU backend (the embedding
//     gradients are: they sort positions on the host, which synchronizes);
//   - a kernel may ask the runtime for scratch memory outside the arena for partial sums (a few MiB),
//     and attention needs no T x T workspace: the planned one goes unused.
// Plain C++: the plan compiles against this header without CUDA types.
#pragma once
#include <cstdint>
#include <initializer_list>

#include "core/ctx.h"
#include "cpu/kernels.h"  // stow::adamw, which adamw_on_host runs on the host (cpu/kernels_adamw.cpp)

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

void embedding_fwd(Ctx& c, float* out, const float* table, const int32_t* idx, int64_t N, int64_t C, int64_t V);
void embedding_bwd(Ctx& c, float* dtable, const int32_t* idx, const float* dy, int64_t N, int64_t C, int64_t V);
void embedding_bwd_acc(Ctx& c, float* out, const float* acc, const int32_t* idx, const float* dy, int64_t N, int64_t C,
                       int64_t V);
void iota(Ctx& c, int32_t* out, int64_t n);
void fill(Ctx& c, float* out, int64_t n, float value);
void matmul(Ctx& c, float* out, const float* a, const float* bm, int64_t batch, int64_t M, int64_t N, int64_t K,
            bool ta, bool tb, int64_t a_stride, int64_t b_stride, Precision precision);
void add(Ctx& c, float* out, const float* a, const float* b, int64_t n, int64_t nb);
void mul(Ctx& c, float* out, const float* a, const float* b, int64_t n, int64_t nb);
void scale(Ctx& c, float* out, const float* a, float s, int64_t n);
void sum_rows(Ctx& c, float* out, const float* in, int64_t rows, int64_t cols);
void layernorm_fwd(Ctx& c, float* y, const float* x, const float* w, const float* b, int64_t rows, int64_t C, float eps);
void layernorm_bwd(Ctx& c, float* dx, float* dw, float* db, const float* x, const float* w, const float* dy,
                   int64_t rows, int64_t C, float eps);
void gelu_fwd(Ctx& c, float* y, const float* x, int64_t n);
void gelu_bwd(Ctx& c, float* dx, const float* x, const float* dy, int64_t n);
// Head size D at most kMaxHeadDim.
constexpr int64_t kMaxHeadDim = 256;
void attention_fwd(Ctx& c, float* y, float* lse, const float* q, const float* k, const float* v,
                   int64_t BH, int64_t T, int64_t D, int64_t group);
void attention_bwd(Ctx& c, float* dq, float* dk, float* dv, const float* q, const float* k, const float* v,
                   const float* y, const float* lse, const float* dy, int64_t BH, int64_t T, int64_t D, int64_t group);
void cross_entropy_fwd(Ctx& c, float* loss, const float* logits, const int32_t* targets, int64_t N, int64_t V);
void cross_entropy_bwd(Ctx& c, float* dlogits, const float* logits, const int32_t* targets, const float* dloss,
                       int64_t N, int64_t V);
void linear_cross_entropy_fwd(Ctx& c, float* loss, float* lse, const float* x, const float* w, const int32_t* targets,
                              int64_t N, int64_t C, int64_t V, bool w_vc, int64_t rows, int64_t cols, Precision precision);
void linear_cross_entropy_bwd(Ctx& c, float* dx, float* dw, const float* x, const float* w, const int32_t* targets,
                              const float* lse, const float* dloss, int64_t N, int64_t C, int64_t V, bool w_vc,
                              int64_t rows, int64_t cols, Precision precision);
void permute(Ctx& c, float* out, const float* in, int rank, const int64_t* in_shape, const int* perm);
void slice_last(Ctx& c, float* out, const float* in, int64_t rows, int64_t cols_in, int64_t offset, int64_t cols_out);
void place_last(Ctx& c, float* out, const float* in, int64_t rows, int64_t cols_out, int64_t offset, int64_t cols_in);
void rope(Ctx& c, float* y, const float* x, int64_t rows, int64_t T, int64_t D, float base, bool inverse);
void silu_fwd(Ctx& c, float* y, const float* x, int64_t n);
void silu_bwd(Ctx& c, float* dx, const float* x, const float* dy, int64_t n);

// Tensor parallelism (runtime/cpu/kernels_tp.h's contracts): collectives on the context's communicator,
// NCCL under --tp (comm_nccl.h), queued on the compute stream; the vocabulary-parallel embedding and
// cross-entropy. Token and target ids are checked on the host before they reach the device.
void all_reduce(Ctx& c, float* out, const float* in, int64_t n, bool max);
void all_gather(Ctx& c, float* out, const float* in, int64_t rows, int64_t cols);
void reduce_scatter(Ctx& c, float* out, const float* in, int64_t rows, int64_t cols);
void broadcast(Ctx& c, void* buf, int64_t bytes, int root);
void shard_slice(Ctx& c, float* out, const float* in, int64_t rows, int64_t cols);
void embedding_vp_fwd(Ctx& c, float* out, const float* table, const int32_t* idx, int64_t N, int64_t C, int64_t V,
                      int64_t vocab);
void embedding_vp_bwd(Ctx& c, float* dtable, const int32_t* idx, const float* dy, int64_t N, int64_t C, int64_t V);
void cross_entropy_vp_max(Ctx& c, float* max, const float* logits, int64_t N, int64_t V, int64_t vocab);
void cross_entropy_vp_sums(Ctx& c, float* sums, const float* logits, const int32_t* targets, const float* max,
                           int64_t N, int64_t V, int64_t vocab);
void cross_entropy_vp(Ctx& c, float* loss, const float* max, const float* sums, int64_t N);
void cross_entropy_vp_bwd(Ctx& c, float* dlogits, const float* logits, const int32_t* targets, const float* max,
                          const float* sums, const float* dloss, int64_t N, int64_t V, int64_t vocab);

// Offloaded model data: copies on the copy streams, ordered after the compute queued before them;
// wait_transfer makes later compute wait for one (the host does not block); drain_transfers ends a
// program that moves model data (the host waits for compute, copies and host AdamW).
int64_t h2d_async(Ctx& c, float* device, const float* host, int64_t n);
int64_t d2h_async(Ctx& c, float* host, const float* device, int64_t n);
void wait_transfer(Ctx& c, int64_t ticket);
void drain_transfers(Ctx& c);

// Global L2 norm over tensors on the device and, in offloaded plans, gradients in the host region:
// writes it to out[0] on the device and returns it.
float grad_norm(Ctx& c, float* out, const float* const* grads, const int64_t* sizes, int64_t count);
// Tensor parallelism: the global norm from per-rank sums of squares (all-reduced between the two), as
// kernels_tp.h's; norm_from_squares returns the norm to the host, as grad_norm does.
void sum_squares(Ctx& c, float* out, const float* const* grads, const int64_t* sizes, int64_t count);
float norm_from_squares(Ctx& c, float* out, const float* const* parts, int64_t count);
void adamw(Ctx& c, float* p, const float* g, float* m, float* v, int64_t n, const AdamHyper& h, float gscale, bool decay);
// The CPU backend's AdamW (runtime/cpu/kernels_adamw.cpp) on an offloaded chunk's host copies, on the host
// worker, once the gradient's copy `after` has arrived; it uses every host thread (the GPU computes).
void adamw_on_host(Ctx& c, int64_t after, float* p, const float* g, float* m, float* v, int64_t n, const AdamHyper& h,
                   float gscale, bool decay);

}  // namespace stow::cuda
