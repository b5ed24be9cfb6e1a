/* Generated from runtime/run_contract.ts by runtime/contract/render.ts (npm run gen:contract); do not edit.
 * The options of a run, as the C ABI (runtime/core/stow_abi.h) takes them, and the defaults that follow from
 * other options. Absent strings are NULL. */
#ifndef STOW_OPTIONS_H
#define STOW_OPTIONS_H
#include <math.h>
#include <stdint.h>

typedef struct {
  const char* data_path;  /* llm.c token file (magic 20240520, version 1); a session without one only infers */
  const char* init_path;  /* initial parameters from a safetensors file under nanoGPT names; absent: seeded */
  const char* resume_path;  /* continue from a checkpoint written by stow_save (--save): parameters, moments, step, data position */
  const char* metrics_path;  /* write per-step metrics here as JSON lines */
  uint64_t seed;  /* initialisation seed */
  int threads;  /* kernel and BLAS threads; 0: all cores */
  int64_t steps;  /* total steps of the run; 0 saves the initialisation */
  float lr;  /* peak learning rate */
  float min_lr;  /* final learning rate of the cosine schedule */
  int lr_schedule;  /* constant, or linear warm-up then cosine decay to min_lr (0 constant, 1 cosine) */
  int64_t warmup_steps;  /* linear warm-up steps of the cosine schedule */
  float weight_decay;  /* AdamW weight decay */
  float beta1;  /* AdamW beta1 */
  float beta2;  /* AdamW beta2 */
  float eps;  /* AdamW epsilon */
  float grad_clip;  /* clip the global gradient norm to this; 0 disables (a plan compiled without clipping rejects > 0) */
  int64_t host_memory;  /* cap on host memory in bytes (data, offloaded model data); 0: none */
  const char* disk_path;  /* folder for the disk tier's scratch file, which plans keeping model data on disk need (removed at exit) */
  double link_gbps;  /* emulated host-device link for offloaded model data, gigabits/s each way; 0: unthrottled */
  const char* profile_path;  /* profiled warm-up: seconds per node, JSON, written here after the profiled steps */
  int64_t profile_steps;  /* steps profiled, after the session's first (which touches fresh memory) */
  const char* model_path;  /* the model file, which checkpoints record relative to their folder */
  const char* model_sha256;  /* the model file's sha256, which checkpoints record beside it */
} StowOptions;

/* min_lr when none is given: lr * 0.1. Computed in double from the value given for lr. */
static inline double stow_derived_min_lr(double lr) {
  double v = lr * 0.1;
  return v;
}

/* warmup_steps when none is given: steps * 0.1, at most 20. Computed in double from the value given for steps. */
static inline int64_t stow_derived_warmup_steps(double steps) {
  int64_t v = (int64_t)floor(steps * 0.1);
  return v < 20 ? v : 20;
}

#endif
