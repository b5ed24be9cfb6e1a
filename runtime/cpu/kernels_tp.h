// Kernels of tensor parallelism (ir/passes/shard.ts), with the conventions of kernels.h. The
// collectives call the context's communicator; each counts one call and the bytes of the whole tensor
// it combines (the plan reports the same numbers), and may run in place (out == in).
#pragma once
#include <cstdint>
#include "core/ctx.h"

namespace stow {

// out = sum (or max) over the ranks of in, n floats.
void all_reduce(Ctx& c, float* out, const float* in, int64_t n, bool max);
// in [rows, cols] on each rank -> out [rows, ranks * cols], rank k's part in columns [k cols, (k+1) cols).
// Workspace: rows * ranks * cols floats unless rows == 1.
void all_gather(Ctx& c, float* out, const float* in, int64_t rows, int64_t cols);
// in [rows, ranks * cols] -> out [rows, cols]: this rank's columns of the sum over the ranks.
// Workspace: rows * ranks * cols floats unless rows == 1.
void reduce_scatter(Ctx& c, float* out, const float* in, int64_t rows, int64_t cols);
// Rank `root`'s bytes to every rank, in place.
void broadcast(Ctx& c, void* buf, int64_t bytes, int root);
// in [rows, ranks * cols] -> out [rows, cols]: this rank's columns (no communication).
void shard_slice(Ctx& c, float* out, const float* in, int64_t rows, int64_t cols);

// Vocabulary-parallel embedding: this rank holds rows [rank V, (rank + 1) V) of a table of `vocab` rows.
// out[n] = its row for idx[n] when this rank holds it, else 0. idx must lie in [0, vocab).
void embedding_vp_fwd(Ctx& c, float* out, const float* table, const int32_t* idx, int64_t N, int64_t C, int64_t V,
                      int64_t vocab);
// dtable[v] = sum over n with idx[n] == rank V + v of dy[n] (rows never hit are 0), in position order.
void embedding_vp_bwd(Ctx& c, float* dtable, const int32_t* idx, const float* dy, int64_t N, int64_t C, int64_t V);

// Vocabulary-parallel cross-entropy on logits [N, V], this rank's columns [rank V, (rank + 1) V) of
// the vocabulary; columns at or past `vocab` are padding and ignored.
// max[n] = the largest of this rank's logits in row n (all-reduced with max afterwards).
void cross_entropy_vp_max(Ctx& c, float* max, const float* logits, int64_t N, int64_t V, int64_t vocab);
// sums[n] = sum of exp(logit - max[n]) over this rank's columns; sums[N + n] = the target's logit
// when this rank holds it, else 0 (both all-reduced with sum afterwards).
void cross_entropy_vp_sums(Ctx& c, float* sums, const float* logits, const int32_t* targets, const float* max,
                           int64_t N, int64_t V, int64_t vocab);
// loss[0] = mean over n of max[n] + log(sums[n]) - sums[N + n], summed in double as cross_entropy_fwd.
void cross_entropy_vp(Ctx& c, float* loss, const float* max, const float* sums, int64_t N);
// dlogits[n, v] = dloss[0] * (softmax[n, v] - (v is the target)) / N on this rank's columns; 0 on padding.
void cross_entropy_vp_bwd(Ctx& c, float* dlogits, const float* logits, const int32_t* targets, const float* max,
                          const float* sums, const float* dloss, int64_t N, int64_t V, int64_t vocab);

// out[0] = sum over the tensors of the sum of their squares, accumulated in double, in order.
void sum_squares(Ctx& c, float* out, const float* const* grads, const int64_t* sizes, int64_t count);
// out[0] = sqrt of the sum of parts[k][0].
void norm_from_squares(Ctx& c, float* out, const float* const* parts, int64_t count);

}  // namespace stow
