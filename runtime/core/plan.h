// What a generated plan gives the generic runtime: the parameter table (names, shapes, arena offsets,
// initialisers) and the compiled programs. The generated plan.cpp defines stow_plan(); everything else
// in runtime/ is the same for every model. It names no backend's kernels: the generated code includes
// its backend's (cpu/kernels.h, cuda/cuda_kernels.h).
#pragma once
#include <cstdint>
#include "ctx.h"
#include "kernel_types.h"

namespace stow {

enum InitKind : int { INIT_NORMAL = 0, INIT_ZEROS = 1, INIT_ONES = 2 };

// Tensor parallelism: which part of the full (checkpoint) parameter a rank holds (ir/types.ts
// ShardSpec). Axis `axis` is `groups` equal blocks, each cut into one part per rank; rank r holds part
// r of each block, and parts may run past `full` (padding, zero). axis < 0: whole on every rank.
struct ShardDesc {
  int axis = -1;
  int groups = 1;
  int64_t full = 0;  // extent of the axis in the full tensor
};

// ZeRO (--zero 1, 2): one chunk of parameters, contiguous from `offset` (bytes, in the arena) and padded
// to dp shards of `shard` floats; this rank holds the AdamW moments of its shard only, at m_offset and
// v_offset. A parameter belongs to the chunk whose [offset, offset + dp * shard * 4) holds its offset.
// ZeRO 3: the rank holds only its shard of the chunk's parameters, at shard_offset in the arena; offsets
// of parameters and chunks are then in the host staging buffer where whole parameters are initialised,
// loaded and saved (zero_staging_bytes). An offloaded chunk's shard and moments lie in the host region.
struct ZeroChunkDesc {
  int64_t offset;
  int64_t shard;
  int64_t m_offset;
  int64_t v_offset;
  int64_t shard_offset;  // -1 below ZeRO 3
  bool on_host;          // ZeRO 3 with offload: the shard and its moments are in the host region
};

struct ParamDesc {
  const char* name;      // nanoGPT state_dict key, e.g. "transformer.h.0.attn.c_attn.weight"
  int rank;
  int64_t shape[4];
  int64_t numel;
  // Byte offsets in the model region: the bottom of the arena, or the host region when on_host.
  int64_t offset;        // the parameter
  int64_t m_offset;      // AdamW's first moment (-1 in a forward-only plan)
  int64_t v_offset;      // AdamW's second moment
  int init_kind;         // InitKind
  float init_std;        // for INIT_NORMAL
  bool decay;            // weight decay applies (parameters of two or more dimensions)
  bool on_host;          // the parameter and its moments are offloaded model data in the host region (or disk tier)
  ShardDesc shard{};     // shape above is this rank's part
  bool moments_on_disk = false;  // m_offset and v_offset are in the disk tier (core/disk_tier.h)
  bool param_on_disk = false;    // offset is in the disk tier too (its chunk's, laid out as in host memory)
};

// Per-step values the runtime computes (learning-rate schedule, step count) and the program reads.
struct StepArgs {
  AdamHyper adam;        // lr already scheduled for this step; t = 1-based step number
  float grad_clip;       // 0 disables clipping
};

// A task model's named input (a model that declares its inputs and returns its own loss): the runtime
// writes each step's rows of it from the step file (step_file.h). Every input's first axis is the batch.
enum InputDtype : int { INPUT_I32 = 0, INPUT_F32 = 1 };
struct InputDesc {
  const char* name;
  int dtype;             // InputDtype; both are 4 bytes an element
  int64_t offset;        // bytes, in the arena: [batch, ...] of the program
  int64_t row_elements;  // elements of one example (the input's shape without the batch axis)
};

struct ProgramDesc {
  void (*run)(Ctx&, const StepArgs&);
  int64_t batch, seq;
  int64_t tokens_offset;   // int32 [batch, seq]
  int64_t targets_offset;  // int32 [batch, seq]; -1 in the inference program
  int64_t loss_offset;     // float [] (training) ; -1 in the inference program
  int64_t logits_offset;   // float [vocab], the logits at `position` (inference); -1 in the training program
  int64_t norm_offset;     // float [] gradient norm, -1 when clipping is off
  int64_t predicted_peak;  // the plan's arena high-water mark for one run of this program
  int64_t node_count;      // nodes of the program's graph (positions a profile is indexed by)
  int64_t position_offset; // int32 [1], the position whose logits the inference program returns; -1 in training
  // A task model's inputs (then tokens, targets, logits and position are -1): none for a language model.
  int ninputs = 0;
  const InputDesc* inputs = nullptr;
};

struct PlanDesc {
  const char* hash;        // content hash of the plan (names the build)
  const char* config_json; // the model config, {"vocab": ...}: what a resumed checkpoint must match
  int64_t vocab;
  int64_t arena_bytes;     // persistent region (unless offloaded) plus the larger dynamic region of the programs
  int64_t host_bytes;      // host region holding offloaded model data; 0: it all lives in the arena
  int64_t device_budget_bytes;  // the --device-memory the plan was compiled for; 0: none
  int64_t param_bytes, opt_state_bytes;
  int nparams;
  const ParamDesc* params;
  ProgramDesc train;
  ProgramDesc infer;
  int ranks = 1;           // tensor-parallel ranks the plan runs on (one process each)
  int dp = 1;              // data-parallel replicas of those; the job is dp * ranks processes
  int zero = 0;            // ZeRO stage over the data-parallel ranks
  int nzero_chunks = 0;
  const ZeroChunkDesc* zero_chunks = nullptr;  // under ZeRO, every chunk of parameters (else none)
  int64_t disk_bytes = 0;  // the disk tier's size (moments, then parameters, of offloaded chunks); 0: none
  int64_t disk_stage = -1; // host region offset of a staging buffer for the largest moment on disk (page-aligned)
  // With parameters on disk: host region offsets (page-aligned) and sizes of the staging buffer a chunk's
  // parameters pass through to the device, and of the one host AdamW reads a parameter's blocks into.
  int64_t disk_load_stage = -1, disk_load_stage_bytes = 0;
  int64_t disk_param_stage = -1, disk_param_stage_bytes = 0;
};

}  // namespace stow

extern "C" const stow::PlanDesc* stow_plan();
