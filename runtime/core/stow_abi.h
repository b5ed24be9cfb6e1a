/* The small C ABI of a built plan (a shared library). Two thin hosts use it: the Node addon in
 * native/ (stow train, stow generate) and the standalone train binary (runtime/core/train_main.cpp).
 * Every function returns 0 on success; on failure, stow_error() says what went wrong. stow_save returns
 * STOW_NOT_FINITE when the state holds a NaN or an infinity: nothing is written then. stow_step returns
 * STOW_AFTER_STEP when the step was taken but what follows it failed (writing its metrics): the state is
 * then that step's, whole, and may still be saved. */
#ifndef STOW_ABI_H
#define STOW_ABI_H
#include <stdint.h>

#include "stow_options.h" /* StowOptions, generated from runtime/run_contract.ts */
#ifdef __cplusplus
extern "C" {
#endif

typedef struct StowSession StowSession;

#define STOW_NOT_FINITE 3
#define STOW_AFTER_STEP 4


typedef struct {
  int64_t step;              /* 1-based number of the step just taken */
  float loss, lr, grad_norm; /* grad_norm is NaN when clipping is off */
  int64_t tokens;            /* tokens in this step (batch * seq) */
  double seconds;            /* wall time of this step */
  int64_t device_peak_bytes; /* arena high-water mark so far (measured) */
  int64_t host_peak_bytes;   /* host pool high-water mark so far (data, staging, offloaded model data) */
  int64_t h2d_bytes, d2h_bytes; /* bytes moved host to device and back in this step */
  int64_t device_budget_bytes;  /* the device budget the plan was compiled for; 0: none */
  double transfer_wait_seconds; /* time compute waited for copies and host work in this step */
} StowStepResult;

typedef struct {
  int64_t vocab, batch, seq, infer_seq;
  int64_t arena_bytes, predicted_train_peak, predicted_infer_peak;
  int64_t param_count;
} StowInfo;

/* Returns NULL on failure and writes the reason into err (errlen bytes). */
StowSession* stow_open(const StowOptions* opts, char* err, int64_t errlen);
int stow_info(StowSession* s, StowInfo* out);
int stow_step(StowSession* s, StowStepResult* out);
/* Atomic: writes path.tmp-<pid>-<random>, fsyncs, renames. Parameters, AdamW moments, step and data
 * position. Refused (nothing written) after a step that failed half-way, and when the state is not finite. */
int stow_save(StowSession* s, const char* path);
/* stow_save that also names the file <stem>.step<N><ext> (a hard link, no second write) and keeps the
 * `keep` newest such copies of the path; keep <= 1 is stow_save. */
int stow_save_kept(StowSession* s, const char* path, int keep);
/* Forward-only program: tokens [infer_seq] -> logits [vocab] at position (0 <= position < infer_seq),
 * the distribution of the token after tokens[position]. */
int stow_infer(StowSession* s, const int32_t* tokens, int64_t position, float* logits);
/* Tensor parallelism: this process's rank and the job's number of ranks (1 and 1 outside MPI). */
int stow_process_rank(int* rank, int* ranks);
/* Collective: every rank passes its own value and gets the largest over the ranks (whether any rank
 * wants to stop, and why), so that all ranks take the same branch after a step. */
int stow_agree(StowSession* s, int mine, int* largest);
/* Ends every rank of the job with this exit code: one rank's failure must not leave the others waiting. */
void stow_abort(int code);
const char* stow_error(StowSession* s);
void stow_close(StowSession* s);

#ifdef __cplusplus
}
#endif
#endif
