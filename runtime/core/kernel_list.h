// The kernels every backend implements, declared once, with their contracts. A backend's header
// defines three macros and includes this file, which expands them into its declarations
// (cpu/kernels.h in namespace stow, cuda/cuda_kernels.h in stow::cuda) and undefines them:
//
//   STOW_KERNEL(name, ret, (params))      the same signature on every backend;
//   STOW_GEMM_KERNEL(name, (params))      a product on a GEMM, returning void: a backend may add how it
//                                         multiplies (CUDA appends `Precision precision`);
//   STOW_NORM_KERNEL(name, (params))      a norm that clipping needs before any update: it is written to
//                                         out[0]; a backend whose arena the host cannot read also returns
//                                         it (CPU: void; CUDA: float).
//
// So a difference between backends' signatures is said once, in a backend's expansion, never per
// kernel. No include guard: each backend header includes it once.
//
// Conventions (each backend header adds its own):
//   - all tensors are dense, row-major, float32 unless named idx/targets (int32) or typed void (any
//     4-byte dtype: the data-movement kernels);
//   - outputs are written, never accumulated into, unless the name says so;
//   - a kernel that needs scratch memory asks Ctx::workspace(bytes) for exactly the amount that
//     ir/ops.ts `workspaceBytes` predicts for it (the plan reserves that much; a mismatch is an error);
//   - results must not depend on thread scheduling: reductions run in a fixed order, so the same
//     thread count gives bitwise identical results run after run;
//   - bad data (a token id outside the table) raises stow::Error with a message naming the op.
// Ctx is core/ctx.h's, AdamHyper core/kernel_types.h's: the including header includes both.

#if !defined(STOW_KERNEL) || !defined(STOW_GEMM_KERNEL) || !defined(STOW_NORM_KERNEL)
#error "core/kernel_list.h: define STOW_KERNEL, STOW_GEMM_KERNEL and STOW_NORM_KERNEL before including it"
#endif

// out[n, c] = table[idx[n], c]; idx values must lie in [0, V).
STOW_KERNEL(embedding_fwd, void, (Ctx& c, float* out, const float* table, const int32_t* idx, int64_t N, int64_t C, int64_t V))
// dtable[v, :] = sum over n with idx[n] == v of dy[n, :]  (dtable is overwritten, rows never hit are 0).
STOW_KERNEL(embedding_bwd, void, (Ctx& c, float* dtable, const int32_t* idx, const float* dy, int64_t N, int64_t C, int64_t V))
// out = acc + embedding_bwd(idx, dy), bitwise: each hit row's positions summed in position order from
// zero, then added to acc's row. out may be acc. Workspace: (V + 1 + N) int32 and threads * C floats.
STOW_KERNEL(embedding_bwd_acc, void, (Ctx& c, float* out, const float* acc, const int32_t* idx, const float* dy, int64_t N,
                                      int64_t C, int64_t V))
// out[i] = i for i in [0, n).
STOW_KERNEL(iota, void, (Ctx& c, int32_t* out, int64_t n))
// out[i] = value for i in [0, n).
STOW_KERNEL(fill, void, (Ctx& c, float* out, int64_t n, float value))

// Batched matrix product: for each b in [0, batch):
//   out_b[M, N] = op(a_b) @ op(b_b), with op(a_b) of shape [M, K] and op(b_b) of shape [K, N].
// ta: a_b is stored as [K, M] (use its transpose); tb: b_b is stored as [N, K].
// a_b = a + b * a_stride, b_b = bm + b * b_stride, out_b = out + b * M * N (strides in elements).
STOW_GEMM_KERNEL(matmul, (Ctx& c, float* out, const float* a, const float* bm, int64_t batch, int64_t M, int64_t N,
                          int64_t K, bool ta, bool tb, int64_t a_stride, int64_t b_stride))

// Elementwise with suffix broadcast: out[i] = a[i] (+|*) b[i % nb]; n is a's size, nb divides n.
STOW_KERNEL(add, void, (Ctx& c, float* out, const float* a, const float* b, int64_t n, int64_t nb))
STOW_KERNEL(mul, void, (Ctx& c, float* out, const float* a, const float* b, int64_t n, int64_t nb))
// out[i] = a[i] * s
STOW_KERNEL(scale, void, (Ctx& c, float* out, const float* a, float s, int64_t n))
// out[col] = sum over rows r (in order r = 0, 1, ...) of in[r, col].
STOW_KERNEL(sum_rows, void, (Ctx& c, float* out, const float* in, int64_t rows, int64_t cols))

// LayerNorm over the last axis (biased variance, as PyTorch): y = (x - mean) * rstd * w + b,
// rstd = 1 / sqrt(var + eps). b may be null: no bias (and then layernorm_bwd's db is null too).
STOW_KERNEL(layernorm_fwd, void, (Ctx& c, float* y, const float* x, const float* w, const float* b, int64_t rows, int64_t C,
                                  float eps))
// Gradients of layernorm_fwd given dy. Workspace: rows * 2 floats (mean and rstd, recomputed here).
// dw[col] and db[col] are sums over rows in row order.
STOW_KERNEL(layernorm_bwd, void, (Ctx& c, float* dx, float* dw, float* db, const float* x, const float* w, const float* dy,
                                  int64_t rows, int64_t C, float eps))

// Elementwise math (fn numbers: core/kernel_math.h's UnaryFn and BinaryFn, formulas math::unary,
// math::binary and their _grad). out may be the first input (or dy for the gradients).
//   unary:      y[i] = fn(x[i]) (p: kPow's exponent);  unary_bwd: dx[i] = dy[i] fn'(x[i]).
//   binary:     out[i] = fn(a[i], b[(i / inner) % nb]), inner * nb divides n (ir/ops.ts binaryBroadcast);
//   binary_bwd: d[i] = dy[i] * d fn(a[i], b[(i / inner) % nb]) / d(a or b, by side), in a's shape (the
//               gradient rule sums it back to b's shape).
STOW_KERNEL(unary, void, (Ctx& c, float* y, const float* x, int64_t n, int32_t fn, float p))
STOW_KERNEL(unary_bwd, void, (Ctx& c, float* dx, const float* x, const float* dy, int64_t n, int32_t fn, float p))
STOW_KERNEL(binary, void, (Ctx& c, float* out, const float* a, const float* b, int64_t n, int64_t inner, int64_t nb,
                           int32_t fn))
STOW_KERNEL(binary_bwd, void, (Ctx& c, float* d, const float* a, const float* b, const float* dy, int64_t n, int64_t inner,
                               int64_t nb, int32_t fn, int32_t side))
// Reduction of each row of C (the last axis) to one value, fn a ReduceFn: sum, mean (the sum / C) or
// max, each summed or compared in index order within its row.
STOW_KERNEL(reduce_last, void, (Ctx& c, float* y, const float* x, int64_t rows, int64_t C, int32_t fn))
// dx[r, j] = dy[r] (sum), dy[r] / C (mean), or for max dy[r] / ties where x[r, j] == y[r] and 0
// elsewhere (ties: how many elements of the row equal y[r]). dx may be x. Sum and mean read neither x
// nor y (both may be null).
STOW_KERNEL(reduce_last_bwd, void, (Ctx& c, float* dx, const float* x, const float* y, const float* dy, int64_t rows,
                                    int64_t C, int32_t fn))

// GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
STOW_KERNEL(gelu_fwd, void, (Ctx& c, float* y, const float* x, int64_t n))
STOW_KERNEL(gelu_bwd, void, (Ctx& c, float* dx, const float* x, const float* dy, int64_t n))

// Scaled dot-product attention on q of shape [BH, T, D] (BH = batch * heads) and k, v of shape
// [BH / group, Tk, D] (Tk -1: T; another length is cross-attention): query slab bh reads KV slab
// bh / group (group 1: ordinary attention; the query head count: multi-query attention).
//   s[i, j] = (q_i . k_j) / sqrt(D) + mask[i, j], over the keys j <= i when causal, else every key;
//   p = softmax_j(s), y_i = sum_j p[i, j] v_j, lse[bh, i] = log sum_j exp(s[i, j]).
// mask (nullptr: none) is added to the scores, -inf where a query must not see a key. It broadcasts as
// PyTorch's attn_mask (ir/attention_mask.ts): slab bh is (b = bh / mask_heads, h = bh % mask_heads), and
// its row i is mask + b * mask_batch + h * mask_head + i * mask_row (element strides, 0 along an axis the
// mask broadcasts over; mask_row -1: Tk). The defaults are one [T, Tk] mask for every slab. A row that
// sees no key (every score -inf) gets y 0, lse -inf and no gradient.
// Workspace: T * Tk floats (the CPU: one head's score matrix, heads one after the other, each product on
// all BLAS threads; CUDA keeps no T x Tk matrix and leaves it unused).
STOW_KERNEL(attention_fwd, void, (Ctx& c, float* y, float* lse, const float* q, const float* k, const float* v, int64_t BH,
                                  int64_t T, int64_t D, int64_t group = 1, int64_t Tk = -1, bool causal = true,
                                  const float* mask = nullptr, int64_t mask_heads = 1, int64_t mask_batch = 0,
                                  int64_t mask_head = 0, int64_t mask_row = -1))
// Gradients given y, lse from the forward and dy, one head at a time. Workspace: 2 * T * Tk floats.
// dk and dv ([BH / group, Tk, D]) sum the contributions of a group's query slabs in slab order. dmask
// (nullptr: none wanted; a learned bias) is the mask's gradient, laid out as the mask: the gradient of
// each score, summed in slab order, then query order, over the slabs and queries that read the entry.
STOW_KERNEL(attention_bwd, void, (Ctx& c, float* dq, float* dk, float* dv, const float* q, const float* k, const float* v,
                                  const float* y, const float* lse, const float* dy, int64_t BH, int64_t T, int64_t D,
                                  int64_t group = 1, int64_t Tk = -1, bool causal = true, const float* mask = nullptr,
                                  float* dmask = nullptr, int64_t mask_heads = 1, int64_t mask_batch = 0,
                                  int64_t mask_head = 0, int64_t mask_row = -1))
// Dropout: y[i] = x[i] / (1 - p) where math::dropout_keep(seed, step, i, p), else 0. The mask is a hash
// of its arguments, so the gradient (this kernel on dy) and a recomputation draw the same one. y may be x.
STOW_KERNEL(dropout, void, (Ctx& c, float* y, const float* x, int64_t n, float p, uint32_t seed, int64_t step))

// Mean cross-entropy over N rows of logits [N, V] against targets [N]: loss[0] = mean_n (lse_n - logit[n, t_n]).
STOW_KERNEL(cross_entropy_fwd, void, (Ctx& c, float* loss, const float* logits, const int32_t* targets, int64_t N, int64_t V))
// dlogits[n, v] = dloss[0] * (softmax(logits[n])[v] - (v == t_n)) / N
STOW_KERNEL(cross_entropy_bwd, void, (Ctx& c, float* dlogits, const float* logits, const int32_t* targets,
                                      const float* dloss, int64_t N, int64_t V))

// The LM head and the mean cross-entropy in one: logits = x [N, C] W^T, with W stored [V, C] (w_vc) or
// [C, V]; loss[0] = mean_n (lse[n] - logits[n, t_n]), lse[n] = log sum_v exp(logits[n, v]). The logits
// are computed a tile of `rows` x `cols` at a time (one GEMM each) and never stored whole; each row's
// softmax sum is carried across its tiles. Workspace: (rows * cols + 2 * rows) floats.
STOW_GEMM_KERNEL(linear_cross_entropy_fwd, (Ctx& c, float* loss, float* lse, const float* x, const float* w,
                                            const int32_t* targets, int64_t N, int64_t C, int64_t V, bool w_vc,
                                            int64_t rows, int64_t cols))
// Its gradients, given the forward's lse: with dlogits[n, v] = dloss[0] (exp(logits[n, v] - lse[n]) -
// (v == t_n)) / N, dx = dlogits W and dW = dlogits^T x (in W's layout). Each tile of logits is computed
// again and turned into dlogits in place; dW's columns of a tile are accumulated over row tiles in row
// order, and dx over vocabulary tiles in vocabulary order. Workspace: rows * cols floats.
STOW_GEMM_KERNEL(linear_cross_entropy_bwd, (Ctx& c, float* dx, float* dw, const float* x, const float* w,
                                            const int32_t* targets, const float* lse, const float* dloss, int64_t N,
                                            int64_t C, int64_t V, bool w_vc, int64_t rows, int64_t cols))

// Data movement: these copy 4-byte elements without reading them, so they serve every dtype of the IR
// (float32 and int32 alike: an int32 tensor may be transposed, split or concatenated as a float one is).
// General axis permutation (transpose): out has shape in_shape permuted by perm,
// out[i_0..i_{r-1}] = in[j] where j_{perm[d]} = i_d. rank <= 6.
STOW_KERNEL(permute, void, (Ctx& c, void* out, const void* in, int rank, const int64_t* in_shape, const int* perm))
// Copy columns [offset, offset + cols_out) of in [rows, cols_in] to out [rows, cols_out].
STOW_KERNEL(slice_last, void, (Ctx& c, void* out, const void* in, int64_t rows, int64_t cols_in, int64_t offset,
                               int64_t cols_out))
// Copy in [rows, cols_in] into columns [offset, offset + cols_in) of out [rows, cols_out].
STOW_KERNEL(place_last, void, (Ctx& c, void* out, const void* in, int64_t rows, int64_t cols_out, int64_t offset,
                               int64_t cols_in))

// Offloaded model data (core/transfer_engine.h on the CPU, the copy streams on CUDA): copies between
// the host region and the arena start on the link and return a ticket; compute waits on the ticket
// before it reads the result (a device copy) or reuses the source (a gradient sent to the host).
STOW_KERNEL(h2d_async, int64_t, (Ctx& c, float* device, const float* host, int64_t n))
// A chunk whose parameters are in the disk tier: read from byte offset `disk` (a whole block) into the
// host staging buffer `stage` (whole blocks), then copied to the device, as one job of the link's queue.
STOW_KERNEL(h2d_from_disk, int64_t, (Ctx& c, float* device, int64_t disk, float* stage, int64_t n))
STOW_KERNEL(d2h_async, int64_t, (Ctx& c, float* host, const float* device, int64_t n))
// A gradient kept in the disk tier: copied into the host staging buffer `stage`, its sums of squares
// kept for the gradient norm, then written at byte offset `disk` (whole blocks), as one job of the
// link's queue.
STOW_KERNEL(d2h_to_disk, int64_t, (Ctx& c, int64_t disk, const float* device, float* stage, int64_t n))
STOW_KERNEL(wait_transfer, void, (Ctx& c, int64_t ticket))
// All queued copies and host work done: the end of every program that moves model data.
STOW_KERNEL(drain_transfers, void, (Ctx& c))

// Global L2 norm of `count` tensors: out[0] = sqrt(sum_t sum_i g_t[i]^2), accumulated in double, in order.
STOW_NORM_KERNEL(grad_norm, (Ctx& c, float* out, const float* const* grads, const int64_t* sizes, int64_t count))
// The same with some gradients in the disk tier: grads[t] null, disk[t] its byte offset there (else -1).
// Their sums of squares were kept as d2h_to_disk wrote them (DiskTier::keep_squares): nothing is read
// back. Bitwise grad_norm's result.
STOW_NORM_KERNEL(grad_norm_from_disk, (Ctx& c, float* out, const float* const* grads, const int64_t* disk, const int64_t* sizes,
                                       int64_t count))

// One AdamW step in place, with PyTorch's formula (torch.optim.AdamW, foreach=False):
//   g = grad * gscale;  if (decay) p -= lr * weight_decay * p;
//   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2;
//   denom = sqrt(v) / sqrt(1 - beta2^t) + eps;  p -= (lr / (1 - beta1^t)) * m / denom.
// gscale is 1 without clipping, else min(1, clip / (norm + 1e-6)) as torch.nn.utils.clip_grad_norm_.
STOW_KERNEL(adamw, void, (Ctx& c, float* p, const float* g, float* m, float* v, int64_t n, const AdamHyper& h, float gscale,
                          bool decay))
// The same update on an offloaded chunk's host copies, run by the host worker after the copy with
// ticket `after` (the gradient's) has arrived: the CPU backend's adamw on every backend.
// ZeRO 3 with the chunk offloaded: zero_adamw on this rank's host shard of the chunk's parameters and
// moments, from the host copy of its gradient shard, on the host worker once transfer `after` is done.
STOW_KERNEL(zero_adamw_on_host, void, (Ctx& c, int64_t after, float* shard_params, const float* grad_shard, const int64_t* offsets,
                                       const int64_t* sizes, const bool* decay, int64_t count, float* m, float* v, int64_t shard,
                                       const AdamHyper& h, float gscale))
STOW_KERNEL(adamw_on_host, void, (Ctx& c, int64_t after, float* p, const float* g, float* m, float* v, int64_t n,
                                  const AdamHyper& h, float gscale, bool decay))
// The same, with the moments in the disk tier at byte offsets m_disk and v_disk, through the disk
// pipeline (core/disk_pipeline.h): pieces of `piece` elements pass through `slots` slots of the host
// staging buffers m_stage and v_stage (4096-aligned, whole blocks), read ahead and written behind the
// update. With the parameter on disk too (p_disk >= 0, p null), the blocks holding each piece go through
// p_stage alike (slots of piece + 1024 elements); with the gradient there (g_disk >= 0, g null), it is
// read into g_stage's slots.
STOW_KERNEL(adamw_on_disk, void, (Ctx& c, int64_t after, float* p, int64_t p_disk, float* p_stage, const float* g, int64_t g_disk,
                                  float* g_stage, int64_t m_disk, int64_t v_disk, float* m_stage, float* v_stage, int64_t piece,
                                  int64_t slots, int64_t n, const AdamHyper& h, float gscale, bool decay))

// ZeRO (--zero 1): this data-parallel rank's shard of one chunk's AdamW update. The chunk's parameters
// lie contiguous from `chunk`, parameter k at element offsets[k] with sizes[k] elements and its gradient
// at grads[k]; the rank owns elements [dp_rank * shard, (dp_rank + 1) * shard) of the chunk and holds
// their moments only (m, v: shard floats). Each element is updated exactly as adamw updates it.
// ZeRO 2: grads is null and grad_shard is this rank's shard of the chunk's gradient (shard floats).
// ZeRO 3 (chunk_is_shard): `chunk` holds only this rank's shard of the parameters (shard floats).
STOW_KERNEL(zero_adamw, void, (Ctx& c, float* chunk, bool chunk_is_shard, const float* const* grads, const float* grad_shard, const int64_t* offsets,
                               const int64_t* sizes, const bool* decay, int64_t count, float* m, float* v, int64_t shard,
                               const AdamHyper& h, float gscale))

// Rotary position embeddings on rows of D (D even), row r at position r % T: for i < D/2 the pair
// (x_i, x_{i+D/2}) turns by the angle t * base^(-2i/D) (rotate-half pairing); inverse turns it back,
// which is the gradient. y may be x. Workspace: T * D floats (cos, sin tables).
STOW_KERNEL(rope, void, (Ctx& c, float* y, const float* x, int64_t rows, int64_t T, int64_t D, float base, bool inverse))
// SiLU: y = x sigmoid(x); dx = dy s (1 + x (1 - s)) with s = sigmoid(x). dx may be dy.
STOW_KERNEL(silu_fwd, void, (Ctx& c, float* y, const float* x, int64_t n))
STOW_KERNEL(silu_bwd, void, (Ctx& c, float* dx, const float* x, const float* dy, int64_t n))

// ---- Tensor parallelism (ir/passes/shard.ts) ----------------------------------------------------------
// The collectives call the context's communicator (comm/comm.h; NCCL on CUDA); each counts one call and
// the bytes of the whole tensor it combines (the plan reports the same numbers), and may run in place
// (out == in).

// out = sum (or max) over the ranks of in, n floats.
STOW_KERNEL(all_reduce, void, (Ctx& c, float* out, const float* in, int64_t n, bool max))
// out = the sum (or the mean) over the data-parallel ranks (Ctx::dp_comm) of in, n floats.
STOW_KERNEL(dp_all_reduce, void, (Ctx& c, float* out, const float* in, int64_t n, bool mean))
// dp_all_reduce beside compute (ZeRO 0 and 1's gradients): copies in to out, starts summing out in
// place and returns the ticket of dp_all_reduce_wait, which waits and scales out to the mean. out is
// not to be touched until then; in is free once this returns.
STOW_KERNEL(dp_all_reduce_start, int64_t, (Ctx& c, float* out, const float* in, int64_t n))
STOW_KERNEL(dp_all_reduce_wait, void, (Ctx& c, int64_t ticket, float* out, int64_t n, bool mean))
// in [rows, cols] on each rank -> out [rows, ranks * cols], rank k's part in columns [k cols, (k+1) cols).
// Workspace: rows * ranks * cols floats unless rows == 1.
STOW_KERNEL(all_gather, void, (Ctx& c, float* out, const float* in, int64_t rows, int64_t cols))
// in [rows, ranks * cols] -> out [rows, cols]: this rank's columns of the sum over the ranks.
// Workspace: rows * ranks * cols floats unless rows == 1.
STOW_KERNEL(reduce_scatter, void, (Ctx& c, float* out, const float* in, int64_t rows, int64_t cols))
// ZeRO: every data-parallel rank's shard (`shard` floats at dp_rank * shard) of the chunk to every rank,
// in place; the chunk holds dp_ranks * shard floats.
STOW_KERNEL(zero_gather, void, (Ctx& c, float* chunk, int64_t shard))
// ZeRO 3: starts out (dp_ranks * shard floats) = every data-parallel rank's shard (shard floats) in rank
// order, beside compute; returns the ticket wait_collective takes. Until then out is not to be read.
STOW_KERNEL(zero_all_gather_start, int64_t, (Ctx& c, float* out, const float* shard_in, int64_t shard))
// Compute from here on may read the result of the collective with this ticket.
STOW_KERNEL(wait_collective, void, (Ctx& c, int64_t ticket))
// Gives the communicator a chance to move the collectives in flight on (between nodes).
STOW_KERNEL(progress_collectives, void, (Ctx& c))
// ZeRO 2: a chunk's gradients into out (dp_ranks * shard floats), gradient k at element offsets[k] with
// sizes[k] elements, zeros elsewhere.
STOW_KERNEL(zero_pack, void, (Ctx& c, float* out, const float* const* grads, const int64_t* offsets, const int64_t* sizes,
                              int64_t count, int64_t shard))
// ZeRO 2: starts out (shard floats) = this data-parallel rank's block of the sum over the ranks of in
// (dp_ranks * shard), beside compute; returns a ticket. Neither buffer is to be touched until the wait,
// zero_reduce_scatter_wait, which also scales out to the mean.
STOW_KERNEL(zero_reduce_scatter_start, int64_t, (Ctx& c, float* out, const float* in, int64_t shard))
STOW_KERNEL(zero_reduce_scatter_wait, void, (Ctx& c, int64_t ticket, float* out, int64_t shard))
// Rank `root`'s bytes to every rank, in place.
STOW_KERNEL(broadcast, void, (Ctx& c, void* buf, int64_t bytes, int root))
// in [rows, ranks * cols] -> out [rows, cols]: this rank's columns (no communication).
STOW_KERNEL(shard_slice, void, (Ctx& c, float* out, const float* in, int64_t rows, int64_t cols))

// Vocabulary-parallel embedding: this rank holds rows [rank V, (rank + 1) V) of a table of `vocab` rows.
// out[n] = its row for idx[n] when this rank holds it, else 0. idx must lie in [0, vocab).
STOW_KERNEL(embedding_vp_fwd, void, (Ctx& c, float* out, const float* table, const int32_t* idx, int64_t N, int64_t C,
                                     int64_t V, int64_t vocab))
// dtable[v] = sum over n with idx[n] == rank V + v of dy[n] (rows never hit are 0), in position order.
STOW_KERNEL(embedding_vp_bwd, void, (Ctx& c, float* dtable, const int32_t* idx, const float* dy, int64_t N, int64_t C,
                                     int64_t V))

// Vocabulary-parallel cross-entropy on logits [N, V], this rank's columns [rank V, (rank + 1) V) of
// the vocabulary; columns at or past `vocab` are padding and ignored.
// max[n] = the largest of this rank's logits in row n (all-reduced with max afterwards).
STOW_KERNEL(cross_entropy_vp_max, void, (Ctx& c, float* max, const float* logits, int64_t N, int64_t V, int64_t vocab))
// sums[n] = sum of exp(logit - max[n]) over this rank's columns; sums[N + n] = the target's logit
// when this rank holds it, else 0 (both all-reduced with sum afterwards).
STOW_KERNEL(cross_entropy_vp_sums, void, (Ctx& c, float* sums, const float* logits, const int32_t* targets,
                                          const float* max, int64_t N, int64_t V, int64_t vocab))
// loss[0] = mean over n of max[n] + log(sums[n]) - sums[N + n], summed in double as cross_entropy_fwd.
STOW_KERNEL(cross_entropy_vp, void, (Ctx& c, float* loss, const float* max, const float* sums, int64_t N))
// dlogits[n, v] = dloss[0] * (softmax[n, v] - (v is the target)) / N on this rank's columns; 0 on padding.
STOW_KERNEL(cross_entropy_vp_bwd, void, (Ctx& c, float* dlogits, const float* logits, const int32_t* targets,
                                         const float* max, const float* sums, const float* dloss, int64_t N, int64_t V,
                                         int64_t vocab))

// out[0] = sum over the tensors of the sum of their squares, accumulated in double, in order.
STOW_KERNEL(sum_squares, void, (Ctx& c, float* out, const float* const* grads, const int64_t* sizes, int64_t count))
// out[0] = sqrt of the sum of parts[k][0] (the sums of squares, all-reduced between the two).
STOW_NORM_KERNEL(norm_from_squares, (Ctx& c, float* out, const float* const* parts, int64_t count))

// ---- Data movement along any axis (issue 17) -------------------------------------------------------
// Words of 4 bytes like the data-movement kernels above, except the gradients, which add floats. The
// shapes have `rank` <= 6 axes (ir/movement.ts merges axes that move alike); the index math is
// core/move_index.h's, shared by the backends.
// Constant padding: out [out_shape] at multi-index i is in [in_shape] at i - before where that lies
// inside in, else the word `fill` (a float's or an int's bits). A negative before crops.
STOW_KERNEL(pad, void, (Ctx& c, void* out, const void* in, int rank, const int64_t* in_shape, const int64_t* before,
                        const int64_t* out_shape, uint32_t fill))
// Broadcast: out [out_shape] at i is in [in_shape] at i with every axis where in_shape is 1 read at 0.
STOW_KERNEL(expand, void, (Ctx& c, void* out, const void* in, int rank, const int64_t* in_shape, const int64_t* out_shape))
// expand's gradient: dx [dx_shape] at j is the sum of dy [dy_shape] over the elements expand copied from
// j, in index order.
STOW_KERNEL(expand_bwd, void, (Ctx& c, float* dx, const float* dy, int rank, const int64_t* dx_shape, const int64_t* dy_shape))
// x seen as [outer, D, inner], out as [outer, n, inner]: out[o, j, i] = x[o, k, i] with k = idx[j]
// (index_select) or, per_element, k = idx[(o n + j) inner + i] (gather, idx of out's shape). k must
// lie in [0, D): the CPU raises an error naming the index; CUDA writes 0 for it.
STOW_KERNEL(take_axis, void, (Ctx& c, void* out, const void* x, const int32_t* idx, int64_t outer, int64_t D, int64_t n,
                              int64_t inner, bool per_element))
// Its gradient, a scatter-add: dx[o, k, i] = the sum of dy[o, j, i] over the j whose index is k, in j
// order from 0 (0 where none). An index outside [0, D) is an error on the CPU; CUDA skips it.
STOW_KERNEL(take_axis_bwd, void, (Ctx& c, float* dx, const int32_t* idx, const float* dy, int64_t outer, int64_t D,
                                  int64_t n, int64_t inner, bool per_element))

// where: out[i] = cond[ci] != 0 ? a[ai] : b[bi], each operand broadcast as binary's b is, by its own
// (inner, n) pair: xi = (i / inner_x) % n_x (ir/ops.ts whereShape, binaryBroadcast). out has n elements.
STOW_KERNEL(where, void, (Ctx& c, float* out, const float* cond, const float* a, const float* b, int64_t n, int64_t inner_c,
                          int64_t nc, int64_t inner_a, int64_t na, int64_t inner_b, int64_t nb))

#undef STOW_KERNEL
#undef STOW_GEMM_KERNEL
#undef STOW_NORM_KERNEL
