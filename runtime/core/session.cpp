// The C ABI of a built plan (stow_abi.h): one session owns the device arena, the training data, the
// metrics file and the step count, and runs the plan's compiled programs. Everything model-specific
// comes from stow_plan(); this file is the same for every model.
#include <omp.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <new>
#include <set>
#include <string>
#include <vector>

#include "atomic_file.h"
#include "checkpoint_names.h"
#include "comm/comm.h"
#include "ctx.h"
#include "device.h"
#include "disk_tier.h"
#include "host_pool.h"
#include "profile.h"
#include "init.h"
#include "json_mini.h"
#include "metrics.h"
#include "plan.h"
#include "safetensors.h"
#include "schedule.h"
#include "shard.h"
#include "stow_abi.h"
#include "step_file.h"
#include "token_file.h"

using stow::Error;

struct StowSession {
  const stow::PlanDesc* plan = nullptr;
  StowOptions opts{};
  std::string init_path, resume_path;  // opts' path pointers are the caller's; keep copies
  std::string model_path, model_sha256;  // the model file (absolute) and its hash, for checkpoints
  stow::HostPool pool;
  std::unique_ptr<stow::HostBuffer<uint8_t>> host;  // offloaded model data, from the host pool
  std::unique_ptr<stow::DiskTier> disk;  // model data of offloaded chunks kept on disk (null: none)
  stow::Ctx ctx;
  stow::Comm* comm = nullptr;  // the process's; collective calls (steps, saves) are made by every rank
  // Under --dp, the groups of the dp x tp mesh (tp ranks adjacent); before the device, whose NCCL
  // communicators are made over them. tp_host is the tensor-parallel group on the host (the whole job
  // without --dp): checkpoints gather over it.
  std::unique_ptr<stow::Comm> tp_group, dp_group;
  stow::Comm* tp_host = nullptr;
  std::unique_ptr<stow::TokenData> data;       // a language model's token stream
  std::unique_ptr<stow::StepData> step_data;  // a task model's named inputs, step by step
  std::unique_ptr<stow::HostBuffer<int32_t>> batch;  // a step's tokens and targets, on their way to the device
  std::unique_ptr<stow::MetricsFile> metrics;
  // Declared after the host memory its copies and host jobs use, so it finishes them before that memory goes.
  std::unique_ptr<stow::Device> device;
  uint8_t* model_mirror = nullptr;  // host view of the arena's resident model data (Device::mirror)
  std::unique_ptr<stow::NodeProfile> profile;
  std::vector<double> profiled_step_seconds;
  // The most host memory the last save held at once beyond what was in use when it began (a metric).
  int64_t save_host_bytes = 0;
  int64_t session_steps = 0;  // steps this session has taken (a resumed run starts again at 0)
  int64_t step = 0;           // steps taken so far (including those of a resumed checkpoint)
  int64_t data_position = 0;  // the checkpoint's position, kept for sessions without data
  // False while a step runs and after one that failed half-way: the arena then holds part of an update,
  // which no checkpoint may record as the state of a step.
  bool at_step_boundary = true;
  std::string error;

  template <typename T>
  T* at(int64_t offset) { return reinterpret_cast<T*>(ctx.arena + offset); }
  // Parameters and moments live at the bottom of the arena (read and written on the host through its
  // mirror), or in the host region when offloaded.
  float* model_at(int64_t offset, bool on_host) { return reinterpret_cast<float*>((on_host ? host->data() : model_mirror) + offset); }
  // Where a checkpoint's moments pass on their way to or from the disk tier: the staging buffer host
  // AdamW uses, idle between steps (its size is the largest moment on disk, in whole blocks).
  float* disk_stage() { return reinterpret_cast<float*>(host->data() + plan->disk_stage); }
  static int64_t disk_moment_bytes(const stow::ParamDesc& p) {
    return (4 * p.numel + stow::DiskTier::kBlock - 1) / stow::DiskTier::kBlock * stow::DiskTier::kBlock;
  }
  // A parameter on disk, whole, staged for the session (initialised, loaded, saved) in the buffer chunks
  // pass through to the device, idle between steps: the blocks holding it are read, and it starts inside
  // them. Valid until the next call; write_disk_param writes the blocks back.
  float* read_disk_param(const stow::ParamDesc& p) {
    const int64_t first = stow::DiskTier::first_block(p.offset);
    disk->read(nullptr, first, host->data() + plan->disk_load_stage, stow::DiskTier::span(p.offset, 4 * p.numel));
    return reinterpret_cast<float*>(host->data() + plan->disk_load_stage + (p.offset - first));
  }
  void write_disk_param(const stow::ParamDesc& p) {
    const int64_t first = stow::DiskTier::first_block(p.offset);
    disk->write(nullptr, first, host->data() + plan->disk_load_stage, stow::DiskTier::span(p.offset, 4 * p.numel));
  }
  // A value the device computed, read on the host.
  float read_float(int64_t offset) {
    float v;
    device->download(&v, at<float>(offset), 4);
    return v;
  }
};

namespace {

// The process's threads, as /proc lists them: with STOW_TEST_THREADS set, each step's metrics report it,
// so that a test can see which threads a plan starts (disk_tier.test.ts: none of the disk tier's without
// one). Unset, as always outside that test, this costs one getenv a step.
int64_t thread_count() {
  std::error_code error;
  int64_t count = 0;
  for (std::filesystem::directory_iterator it("/proc/self/task", error), end; !error && it != end; it.increment(error)) count++;
  return count;
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// Training hyperparameters matter only when there is data to train on; an inference session (the
// generate command) may leave them zero.
void validate_options(const StowOptions& o, const stow::PlanDesc& plan) {
  if (o.threads < 0) throw Error("threads must be 0 (the default) or positive, got " + std::to_string(o.threads));
  if (o.init_path != nullptr && o.resume_path != nullptr)
    throw Error("give an init checkpoint or a checkpoint to resume, not both");
  if (o.data_path == nullptr) return;
  // 0 steps: a session that only initialises (or loads) and saves, e.g. to export an init.
  if (o.steps < 0) throw Error("steps must be at least 0, got " + std::to_string(o.steps));
  if (!(o.lr >= 0) || !std::isfinite(o.lr)) throw Error("lr must be a finite number >= 0, got " + num(o.lr));
  if (!(o.min_lr >= 0) || !std::isfinite(o.min_lr)) throw Error("min_lr must be a finite number >= 0, got " + num(o.min_lr));
  if (o.lr_schedule != stow::LR_CONSTANT && o.lr_schedule != stow::LR_COSINE)
    throw Error("lr_schedule must be 0 (constant) or 1 (cosine), got " + std::to_string(o.lr_schedule));
  if (o.warmup_steps < 0) throw Error("warmup_steps must be >= 0, got " + std::to_string(o.warmup_steps));
  if (!(o.weight_decay >= 0) || !std::isfinite(o.weight_decay))
    throw Error("weight_decay must be a finite number >= 0, got " + num(o.weight_decay));
  if (!(o.beta1 >= 0 && o.beta1 < 1)) throw Error("beta1 must lie in [0, 1), got " + num(o.beta1));
  if (!(o.beta2 >= 0 && o.beta2 < 1)) throw Error("beta2 must lie in [0, 1), got " + num(o.beta2));
  if (!(o.eps > 0) || !std::isfinite(o.eps)) throw Error("eps must be a finite number > 0, got " + num(o.eps));
  if (!(o.grad_clip >= 0) || !std::isfinite(o.grad_clip))
    throw Error("grad_clip must be a finite number >= 0 (0 disables clipping), got " + num(o.grad_clip));
  if (o.grad_clip > 0 && plan.train.norm_offset < 0)
    throw Error("grad_clip is " + num(o.grad_clip) +
                " but this plan was compiled without gradient clipping; rebuild it with clipping or pass 0");
}

// ZeRO 3: the extent of the whole parameters laid out as their chunks, back to back, each padded to the
// data-parallel ranks' shards (codegen/backends/cpu/emit.ts zeroStagedOffsets): ParamDesc::offset is a
// parameter's place in it, and a chunk's offset its place, as initialising, loading and saving see them.
int64_t zero_staging_bytes(const stow::PlanDesc& plan) {
  if (plan.zero != 3) return 0;
  int64_t end = 0;
  for (int i = 0; i < plan.nzero_chunks; i++)
    end = std::max(end, plan.zero_chunks[i].offset + 4 * plan.dp * plan.zero_chunks[i].shard);
  return end;
}

// A broken plan is a compiler bug, but it is cheaper to say so here than to debug a wild write.
void validate_plan(const stow::PlanDesc* plan) {
  if (plan == nullptr) throw Error("internal: stow_plan() returned no plan");
  auto inside_of = [&](int64_t region, const char* name) {
    return [=](int64_t offset, int64_t bytes, const std::string& what) {
      if (offset < 0 || bytes < 0 || offset + bytes > region)
        throw Error("internal: plan " + std::string(plan->hash) + " puts " + what + " at [" + std::to_string(offset) +
                    ", " + std::to_string(offset + bytes) + ") outside its " + name + " of " + std::to_string(region) +
                    " bytes");
    };
  };
  auto inside = inside_of(plan->arena_bytes, "arena");
  auto inside_host = inside_of(plan->host_bytes, "host region");
  auto inside_disk = inside_of(plan->disk_bytes, "disk tier");
  auto inside_staging = inside_of(zero_staging_bytes(*plan), "ZeRO 3 layout of whole parameters");
  if (plan->vocab <= 0 || plan->arena_bytes <= 0) throw Error("internal: plan with no vocabulary or no arena");
  if (plan->ranks < 1) throw Error("internal: plan with no ranks");
  for (int i = 0; i < plan->nparams; i++) {
    const stow::ParamDesc& p = plan->params[i];
    if (p.rank < 0 || p.rank > 4 || p.init_kind < stow::INIT_NORMAL || p.init_kind > stow::INIT_ONES)
      throw Error(std::string("internal: parameter ") + p.name + " has a bad rank or initialiser");
    int64_t numel = 1;
    for (int d = 0; d < p.rank; d++) numel *= p.shape[d];
    if (numel != p.numel) throw Error(std::string("internal: parameter ") + p.name + " numel disagrees with its shape");
    if (p.shard.axis >= p.rank || (p.shard.axis >= 0 && (p.shard.groups < 1 || p.shape[p.shard.axis] % p.shard.groups != 0 ||
                                                           p.shard.full <= 0 || p.shard.full % p.shard.groups != 0)))
      throw Error(std::string("internal: parameter ") + p.name + " has a bad tensor-parallel shard");
    auto inside_model = [&](int64_t offset, const std::string& what) {
      (p.on_host ? inside_host : inside)(offset, 4 * p.numel, what);
    };
    if (plan->zero == 3) {
      inside_staging(p.offset, 4 * p.numel, std::string("parameter ") + p.name);
    } else if (p.param_on_disk) {
      if (!p.moments_on_disk) throw Error(std::string("internal: parameter ") + p.name + " is on disk but its moments are not");
      inside_disk(p.offset, 4 * p.numel, std::string("parameter ") + p.name);
      const int64_t span = stow::DiskTier::span(p.offset, 4 * p.numel);
      if (span > plan->disk_load_stage_bytes || span > plan->disk_param_stage_bytes)
        throw Error(std::string("internal: parameter ") + p.name + "'s disk blocks do not fit its staging buffers");
      inside_host(plan->disk_load_stage, plan->disk_load_stage_bytes, "the disk tier's chunk staging");
      inside_host(plan->disk_param_stage, plan->disk_param_stage_bytes, "the disk tier's parameter staging");
    } else {
      inside_model(p.offset, std::string("parameter ") + p.name);
    }
    if (p.moments_on_disk) {
      if (!p.on_host || p.m_offset < 0 || p.v_offset < 0 || p.shard.axis >= 0)
        throw Error(std::string("internal: parameter ") + p.name + " keeps moments on disk but is not offloaded, has none or is sharded");
      inside_host(plan->disk_stage, StowSession::disk_moment_bytes(p), std::string("the disk tier's staging of ") + p.name);
      for (int64_t offset : {p.m_offset, p.v_offset}) {
        if (offset % stow::DiskTier::kBlock != 0) throw Error(std::string("internal: a moment of ") + p.name + " is not block-aligned on disk");
        inside_disk(offset, StowSession::disk_moment_bytes(p), std::string("a moment of ") + p.name);
      }
      continue;
    }
    if (p.m_offset >= 0) inside_model(p.m_offset, std::string("the first moment of ") + p.name);
    if (p.v_offset >= 0) inside_model(p.v_offset, std::string("the second moment of ") + p.name);
  }
  if (plan->zero > 0 && (plan->nzero_chunks < 1 || plan->zero_chunks == nullptr || plan->dp < 2))
    throw Error("internal: a ZeRO plan without chunks or data-parallel ranks");
  for (int i = 0; i < plan->nzero_chunks; i++) {
    const stow::ZeroChunkDesc& c = plan->zero_chunks[i];
    if (plan->zero == 3) {
      inside_staging(c.offset, 4 * plan->dp * c.shard, "ZeRO chunk " + std::to_string(i));
      (c.on_host ? inside_host : inside)(c.shard_offset, 4 * c.shard, "this rank's parameters of ZeRO chunk " + std::to_string(i));
    } else {
      inside(c.offset, 4 * plan->dp * c.shard, "ZeRO chunk " + std::to_string(i));
    }
    (c.on_host ? inside_host : inside)(c.m_offset, 4 * c.shard, "the first moments of ZeRO chunk " + std::to_string(i));
    (c.on_host ? inside_host : inside)(c.v_offset, 4 * c.shard, "the second moments of ZeRO chunk " + std::to_string(i));
  }
  const stow::ProgramDesc& t = plan->train;
  const stow::ProgramDesc& f = plan->infer;
  if (t.run == nullptr || f.run == nullptr) throw Error("internal: plan without a training or inference program");
  if (t.batch <= 0 || t.seq <= 0 || f.seq <= 0) throw Error("internal: plan with an empty batch or sequence");
  // stow_infer takes one sequence of infer_seq tokens (stow_abi.h).
  if (f.batch != 1) throw Error("internal: the inference program has batch " + std::to_string(f.batch) + ", expected 1");
  inside(t.loss_offset, 4, "the loss");
  if (t.norm_offset >= 0) inside(t.norm_offset, 4, "the gradient norm");
  if (t.ninputs > 0) {
    // A task model: its named inputs, and an inference program that nothing runs (stow_infer refuses).
    for (const stow::ProgramDesc* p : {&t, &f})
      for (int i = 0; i < p->ninputs; i++)
        inside(p->inputs[i].offset, 4 * p->batch * p->inputs[i].row_elements, std::string("the input ") + p->inputs[i].name);
    return;
  }
  inside(t.tokens_offset, 4 * t.batch * t.seq, "the training tokens");
  inside(t.targets_offset, 4 * t.batch * t.seq, "the training targets");
  inside(f.tokens_offset, 4 * f.batch * f.seq, "the inference tokens");
  inside(f.logits_offset, 4 * plan->vocab, "the logits");
  inside(f.position_offset, 4, "the inference position");
}

int64_t parse_metadata_int(const stow::SafetensorsFile& f, const char* key) {
  const std::string* v = f.metadata(key);
  if (v == nullptr)
    throw Error(f.path() + ": __metadata__ has no \"" + key + "\"; is it a checkpoint written by stow save?");
  char* end = nullptr;
  errno = 0;
  long long n = std::strtoll(v->c_str(), &end, 10);
  if (v->empty() || *end != '\0' || errno != 0 || n < 0)
    throw Error(f.path() + ": __metadata__ \"" + key + "\" is \"" + *v + "\", expected a non-negative integer");
  return n;
}

// A checkpoint holds whole tensors; a sharded parameter reads the full one and keeps this rank's part.
void read_local(StowSession& s, stow::SafetensorsFile& f, const std::string& name, const stow::ParamDesc& p, float* dst) {
  if (p.shard.axis < 0) {
    f.read_f32(name, p.shape, p.rank, dst);
  } else {
    const std::vector<int64_t> shape = stow::full_shape(p);
    stow::HostBuffer<float> full(s.pool, stow::full_numel(p), "a full tensor to read a shard from");
    f.read_f32(name, shape.data(), int(shape.size()), full.data());
    stow::take_shard(p, s.ctx.rank, full.data(), dst);
  }
}

void read_param(StowSession& s, stow::SafetensorsFile& f, const std::string& name, const stow::ParamDesc& p,
                int64_t offset) {
  read_local(s, f, name, p, s.model_at(offset, p.on_host));
  if (!p.on_host) s.ctx.touch(s.at<float>(offset), 4 * p.numel);
}



// ZeRO: the chunk a parameter lies in, and the parameter's first element within it.
const stow::ZeroChunkDesc& zero_chunk_of(const stow::PlanDesc& plan, const stow::ParamDesc& p, int64_t* element) {
  for (int i = 0; i < plan.nzero_chunks; i++) {
    const stow::ZeroChunkDesc& c = plan.zero_chunks[i];
    if (p.offset >= c.offset && p.offset < c.offset + 4 * plan.dp * c.shard) {
      *element = (p.offset - c.offset) / 4;
      return c;
    }
  }
  throw Error(std::string("internal: parameter ") + p.name + " lies in no ZeRO chunk");
}

// ZeRO 3: each chunk's whole parameters are made on the host by `fill` (parameter index, where its first
// element goes), and this rank keeps its shard of them; one chunk at a time, so no more than one chunk
// is ever whole on the host (the chunk's padding stays zero).
void shard_zero_params(StowSession& s, const std::function<void(int, float*)>& fill) {
  const stow::PlanDesc& plan = *s.plan;
  for (int k = 0; k < plan.nzero_chunks; k++) {
    const stow::ZeroChunkDesc& c = plan.zero_chunks[k];
    stow::HostBuffer<float> whole(s.pool, plan.dp * c.shard, "a chunk of whole parameters to shard");
    std::fill(whole.data(), whole.data() + whole.size(), 0.0f);
    for (int i = 0; i < plan.nparams; i++) {
      int64_t at = 0;
      if (&zero_chunk_of(plan, plan.params[i], &at) == &c) fill(i, whole.data() + at);
    }
    std::memcpy(s.model_at(c.shard_offset, c.on_host), whole.data() + int64_t(s.ctx.dp_rank) * c.shard, size_t(c.shard) * 4);
    if (!c.on_host) s.ctx.touch(s.at<float>(c.shard_offset), 4 * c.shard);
  }
}

// Parameters from a checkpoint: where they live, or at ZeRO 3 this rank's shards of them.
void read_params(StowSession& s, stow::SafetensorsFile& f) {
  if (s.plan->zero == 3) {
    shard_zero_params(s, [&](int i, float* whole) { read_local(s, f, s.plan->params[i].name, s.plan->params[i], whole); });
    return;
  }
  for (int i = 0; i < s.plan->nparams; i++) {
    const stow::ParamDesc& p = s.plan->params[i];
    if (!p.param_on_disk) {
      read_param(s, f, p.name, p, p.offset);
      continue;
    }
    read_local(s, f, p.name, p, s.read_disk_param(p));
    s.write_disk_param(p);
  }
}

// ZeRO: a moment (first or second) of a whole parameter, read as checkpoints hold it, of which this rank
// keeps the part in its shard of the parameter's chunk.
void read_zero_moment(StowSession& s, stow::SafetensorsFile& f, const std::string& name, const stow::ParamDesc& p, bool second) {
  stow::HostBuffer<float> local(s.pool, p.numel, "a moment to take a ZeRO shard of");
  read_local(s, f, name, p, local.data());
  int64_t at = 0;
  const stow::ZeroChunkDesc& c = zero_chunk_of(*s.plan, p, &at);
  const int64_t begin = int64_t(s.ctx.dp_rank) * c.shard;
  const int64_t from = std::max(begin, at), to = std::min(begin + c.shard, at + p.numel);
  float* shard = s.model_at(second ? c.v_offset : c.m_offset, c.on_host);
  for (int64_t e = from; e < to; e++) shard[e - begin] = local[e - at];
}

// Parameters only, under their nanoGPT names. Optimizer state of a stow checkpoint and the tied head
// alias of a nanoGPT state_dict may be present and are ignored; anything else means the file belongs
// to another model.
void load_init(StowSession& s, const std::string& path) {
  stow::SafetensorsFile f(path, s.pool);
  std::set<std::string> names;
  for (int i = 0; i < s.plan->nparams; i++) names.insert(s.plan->params[i].name);
  for (const stow::TensorEntry& e : f.tensors())
    if (!names.count(e.name) && e.name.rfind("opt.", 0) != 0 && e.name != "lm_head.weight")
      throw Error(path + ": tensor '" + e.name + "' is not a parameter of this model (is the checkpoint for another model?)");
  read_params(s, f);
}

// The checkpoint's "model" metadata is {"model": file, "sha256": ..., "config": {...}}; a run resumes
// only at the config it was saved with (the file may have moved, and its path is the host's business).
void check_same_config(const stow::SafetensorsFile& f, const stow::PlanDesc& plan) {
  const std::string* model = f.metadata("model");
  if (model == nullptr)
    throw Error(f.path() + ": __metadata__ has no \"model\"; is it a checkpoint written by stow save?");
  stow::Json saved, ours;
  std::string why;
  int64_t at = 0;
  const stow::Json* config = nullptr;
  if (stow::parse_json(*model, saved, why, at) && saved.kind == stow::Json::OBJECT) config = saved.find("config");
  if (config == nullptr)
    throw Error(f.path() + ": __metadata__ \"model\" is " + *model + ", expected a JSON object with a \"config\"");
  if (!stow::parse_json(plan.config_json, ours, why, at)) throw Error("internal: the plan's config is not JSON: " + why);
  if (!stow::json_equal(*config, ours))
    throw Error(f.path() + " was saved with model config " + stow::json_text(*config) + ", but this run's config is " +
                plan.config_json);
}

// Everything stow_save wrote: parameters, both moments, step and data position, for the same model.
void load_resume(StowSession& s, const std::string& path) {
  stow::SafetensorsFile f(path, s.pool);
  check_same_config(f, *s.plan);
  s.step = parse_metadata_int(f, "step");
  s.data_position = parse_metadata_int(f, "data_position");

  std::set<std::string> names;
  for (int i = 0; i < s.plan->nparams; i++) {
    const stow::ParamDesc& p = s.plan->params[i];
    names.insert(p.name);
    if (p.m_offset >= 0 || s.plan->zero > 0) names.insert(std::string("opt.m.") + p.name);
    if (p.v_offset >= 0 || s.plan->zero > 0) names.insert(std::string("opt.v.") + p.name);
  }
  for (const stow::TensorEntry& e : f.tensors())
    if (!names.count(e.name)) throw Error(path + ": tensor '" + e.name + "' is not part of this model's training state");
  read_params(s, f);
  for (int i = 0; i < s.plan->nparams; i++) {
    const stow::ParamDesc& p = s.plan->params[i];
    for (const auto& [moment, offset] : {std::pair{"opt.m.", p.m_offset}, std::pair{"opt.v.", p.v_offset}}) {
      if (offset < 0) continue;
      if (!p.moments_on_disk) {
        read_param(s, f, moment + std::string(p.name), p, offset);
        continue;
      }
      read_local(s, f, moment + std::string(p.name), p, s.disk_stage());
      s.disk->write(nullptr, offset, s.disk_stage(), StowSession::disk_moment_bytes(p));
    }
    if (s.plan->zero > 0) {
      read_zero_moment(s, f, std::string("opt.m.") + p.name, p, false);
      read_zero_moment(s, f, std::string("opt.v.") + p.name, p, true);
    }
  }
}

// The end of the resident model data at the bottom of the arena: parameters and moments not offloaded.
int64_t resident_model_bytes(const stow::PlanDesc& plan) {
  int64_t end = 0;
  for (int i = 0; i < plan.nparams; i++) {
    const stow::ParamDesc& p = plan.params[i];
    if (p.on_host) continue;  // moments too: on the host or on disk
    if (plan.zero == 3) continue;  // its chunks' shards hold it (below)
    for (int64_t offset : {p.offset, p.m_offset, p.v_offset})
      if (offset >= 0) end = std::max(end, offset + 4 * p.numel);
  }
  for (int i = 0; i < plan.nzero_chunks; i++) {
    const stow::ZeroChunkDesc& c = plan.zero_chunks[i];
    if (c.on_host) continue;
    const int64_t params_end = plan.zero == 3 ? c.shard_offset + 4 * c.shard : c.offset + 4 * plan.dp * c.shard;
    end = std::max({end, params_end, c.m_offset + 4 * c.shard, c.v_offset + 4 * c.shard});
  }
  return end;
}

void open_session(StowSession& s, const StowOptions& o) {
  s.plan = stow_plan();
  validate_plan(s.plan);
  validate_options(o, *s.plan);
  s.comm = &stow::process_comm();
  const int world = s.plan->ranks * s.plan->dp;
  if (s.comm->size() != world) {
    const std::string flags = "--tp " + std::to_string(s.plan->ranks) + (s.plan->dp > 1 ? " --dp " + std::to_string(s.plan->dp) : "");
    throw Error("this plan was compiled for " + flags + " and must run on " + std::to_string(world) + " ranks, " +
                "but it runs on " + std::to_string(s.comm->size()) +
                (world > 1 ? " (start it with mpirun -np " + std::to_string(world) + ", srun or stow train)" : ""));
  }
  s.tp_host = s.comm;
  if (s.plan->dp > 1) {
    // World rank = dp index * tp + tp index: a tp group is `ranks` adjacent ranks, a dp group one rank of each.
    const int rank = s.comm->rank();
    s.tp_group = s.comm->split(rank / s.plan->ranks, rank);
    s.dp_group = s.comm->split(rank % s.plan->ranks, rank);
    s.tp_host = s.tp_group.get();
    s.ctx.dp_comm = s.dp_group.get();
    s.ctx.dp_rank = s.dp_group->rank();
    s.ctx.dp_ranks = s.dp_group->size();
  }
  s.ctx.comm = s.tp_host;
  s.ctx.rank = s.tp_host->rank();
  s.ctx.ranks = s.tp_host->size();
  s.opts = o;
  if (o.init_path) s.init_path = o.init_path;
  if (o.resume_path) s.resume_path = o.resume_path;
  if (o.model_path) s.model_path = std::filesystem::absolute(o.model_path).lexically_normal().string();
  if (o.model_sha256) s.model_sha256 = o.model_sha256;
  if (o.profile_path != nullptr) {
    if (o.profile_steps < 1) throw Error("profile_steps must be at least 1 with a profile path, got " + std::to_string(o.profile_steps));
    s.profile = std::make_unique<stow::NodeProfile>(o.profile_path, s.plan->train.node_count, o.profile_steps);
  }
  s.opts.init_path = s.opts.resume_path = s.opts.data_path = s.opts.metrics_path = s.opts.profile_path = nullptr;  // not ours to keep
  s.opts.model_path = s.opts.model_sha256 = nullptr;

  s.pool.set_limit(o.host_memory);
  if (s.plan->host_bytes > 0) {
    // Offloaded model data: a host region, counted in the host pool's high-water mark.
    s.host = std::make_unique<stow::HostBuffer<uint8_t>>(s.pool, s.plan->host_bytes, "offloaded model data");
    std::memset(s.host->data(), 0, size_t(s.plan->host_bytes));
    s.ctx.host = s.host->data();
    s.ctx.host_bytes = s.plan->host_bytes;
  }
  if (s.plan->disk_bytes > 0) {
    if (o.disk_path == nullptr)
      throw Error("this plan keeps model data on disk (" + std::to_string(s.plan->disk_bytes) + " bytes): give a folder for it (disk_path)");
    s.disk = std::make_unique<stow::DiskTier>(o.disk_path, s.plan->disk_bytes);
    s.ctx.disk = s.disk.get();
  }
  s.ctx.threads = o.threads > 0 ? o.threads : omp_get_num_procs();
  s.device = stow::open_device(*s.plan, s.ctx, s.host ? s.host->data() : nullptr, {s.ctx.threads, o.link_gbps});

  // Model data is initialised and loaded on the host, then moved to the device in one copy.
  s.model_mirror = s.device->mirror(resident_model_bytes(*s.plan));
  // ZeRO 3: whole parameters are made on the host a chunk at a time, each rank keeping its shard of them.
  if (s.plan->zero == 3) {
    shard_zero_params(s, [&](int i, float* whole) { stow::init_parameter(*s.plan, i, whole, o.seed, s.ctx.rank, s.pool); });
  } else {
    stow::init_parameters(*s.plan, s.model_mirror, s.host ? s.host->data() : nullptr, o.seed, s.ctx.rank, s.pool);
    // Parameters on disk (never sharded: the disk tier runs on one rank) are drawn into their blocks.
    for (int i = 0; i < s.plan->nparams; i++) {
      const stow::ParamDesc& p = s.plan->params[i];
      if (!p.param_on_disk) continue;
      stow::init_parameter(*s.plan, i, s.read_disk_param(p), o.seed, s.ctx.rank, s.pool);
      s.write_disk_param(p);
    }
    for (int i = 0; i < s.plan->nparams; i++)
      if (!s.plan->params[i].on_host) s.ctx.touch(s.at<float>(s.plan->params[i].offset), 4 * s.plan->params[i].numel);
  }
  if (!s.init_path.empty()) load_init(s, s.init_path);
  if (!s.resume_path.empty()) load_resume(s, s.resume_path);
  s.device->push_mirror();
  s.device->release_mirror();

  if (o.data_path != nullptr && s.plan->train.ninputs > 0) {
    // The global batch: every data-parallel rank reads its rows of it.
    s.step_data = std::make_unique<stow::StepData>(o.data_path, s.plan->train, s.plan->train.batch * s.plan->dp, s.pool);
    s.step_data->set_position(s.data_position);
  } else if (o.data_path != nullptr) {
    // The global batch: every data-parallel rank reads its rows of it.
    s.data = std::make_unique<stow::TokenData>(o.data_path, s.plan->vocab, s.plan->train.batch * s.plan->dp, s.plan->train.seq, s.pool);
    s.data->set_position(s.data_position);
    s.batch = std::make_unique<stow::HostBuffer<int32_t>>(s.pool, 2 * s.plan->train.batch * s.plan->train.seq, "the step's tokens");
  }
  // Last, so that a run refused above does not truncate the metrics of the run it would replace.
  // Rank 0 writes the job's metrics, with every rank's measurements.
  if (o.metrics_path != nullptr && s.comm->rank() == 0)
    s.metrics = std::make_unique<stow::MetricsFile>(o.metrics_path, s.resume_path.empty() ? -1 : s.step);
}

// The parameter bytes this rank holds: its parts of them, or at ZeRO 3 its shards of their chunks.
int64_t param_bytes(const stow::PlanDesc& plan) {
  int64_t bytes = 0;
  if (plan.zero == 3)
    for (int i = 0; i < plan.nzero_chunks; i++) bytes += 4 * plan.zero_chunks[i].shard;
  else
    for (int i = 0; i < plan.nparams; i++) bytes += 4 * plan.params[i].numel;
  return bytes;
}

// Every rank's measurements of the step, gathered on rank 0 as metrics fields: the device high-water
// mark, the parameter bytes it holds, its collectives' calls and bytes, and its host pool's high-water
// mark (offloaded model data, data buffers, staging), the host memory the last save held beyond what
// was in use when it began (0 before any save), and the microseconds it waited for ZeRO's collectives.
// Ranks in world order (data-parallel index * tp + tensor-parallel index).
constexpr int kRankFields = 7;
std::string rank_metrics(StowSession& s) {
  const int64_t mine[kRankFields] = {s.ctx.high_water, param_bytes(*s.plan), s.ctx.comm_calls, s.ctx.comm_bytes, s.pool.peak_bytes(),
                                     s.save_host_bytes, int64_t(s.ctx.comm_wait_seconds * 1e6)};
  const int world = s.comm->size();
  std::vector<int64_t> all(kRankFields * size_t(world));
  s.comm->gather(mine, all.data(), sizeof mine, 0);
  const char* names[kRankFields] = {"rank_device_peak_bytes", "rank_param_bytes", "rank_comm_calls", "rank_comm_bytes",
                                    "rank_host_peak_bytes", "rank_save_host_bytes", "rank_collective_wait_us"};
  std::string json = "\"ranks\":" + std::to_string(world) + ",\"comm_calls\":" + std::to_string(s.ctx.comm_calls) +
                     ",\"comm_bytes\":" + std::to_string(s.ctx.comm_bytes);
  if (s.plan->dp > 1) json += ",\"dp\":" + std::to_string(s.plan->dp) + ",\"tp\":" + std::to_string(s.plan->ranks);
  for (int k = 0; k < kRankFields; k++) {
    json += std::string(",\"") + names[k] + "\":[";
    for (int r = 0; r < world; r++) json += (r ? "," : "") + std::to_string(all[kRankFields * r + k]);
    json += "]";
  }
  return json;
}

// A failure after a step completed (its metrics could not be written): the state is that step's.
struct AfterStepError : Error {
  using Error::Error;
};

void take_step(StowSession& s, StowStepResult& out) {
  if (!s.data && !s.step_data) throw Error("cannot train: the session was opened without a data file");
  const stow::ProgramDesc& prog = s.plan->train;
  const StowOptions& o = s.opts;
  const int64_t t = s.step + 1;
  const float lr = stow::scheduled_lr(o.lr_schedule, t, o.steps, o.warmup_steps, o.lr, o.min_lr);

  auto start = std::chrono::steady_clock::now();
  const int64_t n = prog.batch * prog.seq;
  s.at_step_boundary = false;  // from here on the data position and then the model are mid-step
  if (s.step_data) {
    s.step_data->next_step();
    for (int i = 0; i < prog.ninputs; i++) {
      const stow::InputDesc& in = prog.inputs[i];
      const int64_t bytes = 4 * prog.batch * in.row_elements;
      s.device->upload(s.at<uint8_t>(in.offset), s.step_data->input(i, int64_t(s.ctx.dp_rank) * prog.batch), bytes);
      s.ctx.touch(s.at<uint8_t>(in.offset), bytes);
    }
  } else {
    int32_t* tokens = s.batch->data();
    int32_t* targets = tokens + n;
    s.data->next_batch(tokens, targets, int64_t(s.ctx.dp_rank) * prog.batch, prog.batch);
    s.device->upload(s.at<int32_t>(prog.tokens_offset), tokens, 4 * n);
    s.device->upload(s.at<int32_t>(prog.targets_offset), targets, 4 * n);
    s.ctx.touch(s.at<int32_t>(prog.tokens_offset), 4 * n);
    s.ctx.touch(s.at<int32_t>(prog.targets_offset), 4 * n);
  }
  stow::StepArgs args{{lr, o.beta1, o.beta2, o.eps, o.weight_decay, t}, o.grad_clip};
  s.device->reset_transfer_stats();
  if (s.disk) s.disk->read_bytes = s.disk->write_bytes = 0;
  s.ctx.comm_calls = s.ctx.comm_bytes = 0;
  s.ctx.comm_wait_seconds = 0;
  // The session's first step touches fresh memory; the next profile_steps are profiled.
  const bool profiled = s.profile && s.session_steps >= 1 && s.session_steps <= s.profile->steps();
  s.ctx.node_seconds = profiled ? s.profile->sink() : nullptr;
  s.ctx.timed_node = -1;
  if (profiled) {
    s.profile->begin_step();
    s.ctx.step_origin = std::chrono::steady_clock::now();
    s.ctx.node_start = s.profile->starts();
    s.ctx.node_end = s.profile->ends();
    if (s.ctx.engine) s.ctx.engine->trace(s.profile->spans(), s.ctx.step_origin);
  }
  prog.run(s.ctx, args);
  s.device->synchronize();
  s.ctx.node_seconds = s.ctx.node_start = s.ctx.node_end = nullptr;
  if (s.ctx.engine) s.ctx.engine->trace(nullptr, {});
  s.session_steps++;
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  float loss = s.read_float(prog.loss_offset);
  if (std::isnan(loss)) throw Error("loss became NaN at step " + std::to_string(t));
  if (!std::isfinite(loss)) throw Error("loss became infinite at step " + std::to_string(t));
  s.step = t;
  s.at_step_boundary = true;

  out.step = t;
  out.loss = loss;
  out.lr = lr;
  out.grad_norm = prog.norm_offset >= 0 ? s.read_float(prog.norm_offset) : NAN;
  out.tokens = n * s.plan->dp;  // the global batch's
  out.seconds = seconds;
  out.device_peak_bytes = s.ctx.high_water;
  out.host_peak_bytes = s.pool.peak_bytes();
  const stow::TransferStats moved = s.device->transfer_stats();
  out.h2d_bytes = moved.h2d_bytes;
  out.transfer_wait_seconds = moved.wait_seconds;
  out.device_budget_bytes = s.plan->device_budget_bytes;
  out.d2h_bytes = moved.d2h_bytes;
  std::string extra = s.comm->size() > 1 ? rank_metrics(s) : std::string();
  // A plan with a disk tier reports what moved to and from it (the plan predicts the same bytes).
  if (s.disk)
    extra += (extra.empty() ? "" : ",") + std::string("\"disk_read_bytes\":") + std::to_string(s.disk->read_bytes) +
             ",\"disk_write_bytes\":" + std::to_string(s.disk->write_bytes);
  if (const char* count = std::getenv("STOW_TEST_THREADS"); count != nullptr && *count != '\0')
    extra += (extra.empty() ? "" : ",") + std::string("\"threads\":") + std::to_string(thread_count());
  // The step is done (and every collective of it): what fails from here on leaves a whole state.
  try {
    if (s.metrics) s.metrics->write(out, extra);
    if (profiled) {
      s.profiled_step_seconds.push_back(seconds);
      if (int64_t(s.profiled_step_seconds.size()) == s.profile->steps()) s.profile->write(s.plan->hash, s.profiled_step_seconds);
    }
  } catch (const Error& e) {
    throw AfterStepError(e.what());
  }
}

// {"model": the model file relative to the checkpoint's folder, "sha256": its hash, "config": {...}}: the
// checkpoint finds its model wherever it is opened from, and tells when the file changed since.
std::string model_metadata(const StowSession& s, const std::string& checkpoint) {
  std::string json = "{";
  if (!s.model_path.empty()) {
    namespace fs = std::filesystem;
    const fs::path folder = fs::absolute(stow::folder_of(checkpoint)).lexically_normal();
    json += "\"model\":" + stow::json_quote(fs::path(s.model_path).lexically_relative(folder).string()) + ",";
  }
  if (!s.model_sha256.empty()) json += "\"sha256\":" + stow::json_quote(s.model_sha256) + ",";
  return json + "\"config\":" + s.plan->config_json + "}";
}

// What a checkpoint holds of a parameter: the parameter itself or one of its AdamW moments.
enum class Kept { Param, FirstMoment, SecondMoment };

struct SavedTensor {
  std::string name;
  int param;
  Kept kept;
};

// The tensors of a checkpoint in the order they are written: the parameters, then the first moments,
// then the second. Under ZeRO each kind goes chunk by chunk (a chunk's parameters in their order in
// it), so that each chunk is gathered once; a reader finds tensors by name.
std::vector<SavedTensor> saved_tensors(const stow::PlanDesc& plan) {
  std::vector<int> order(size_t(plan.nparams));
  for (int i = 0; i < plan.nparams; i++) order[size_t(i)] = i;
  if (plan.zero > 0) {
    auto place = [&](int i) {
      int64_t at = 0;
      const stow::ZeroChunkDesc& c = zero_chunk_of(plan, plan.params[i], &at);
      return std::pair{&c - plan.zero_chunks, at};
    };
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return place(a) < place(b); });
  }
  std::vector<SavedTensor> tensors;
  for (int i : order) tensors.push_back({plan.params[i].name, i, Kept::Param});
  for (const auto& [prefix, kept] : {std::pair{"opt.m.", Kept::FirstMoment}, std::pair{"opt.v.", Kept::SecondMoment}})
    for (int i : order) {
      const stow::ParamDesc& p = plan.params[i];
      if (plan.zero > 0 || (kept == Kept::FirstMoment ? p.m_offset : p.v_offset) >= 0)
        tensors.push_back({prefix + std::string(p.name), i, kept});
    }
  return tensors;
}

// ZeRO: the chunk a tensor being saved lies in, whole, gathered from every data-parallel rank's shard
// onto the first. The chunk gathered before is freed first, so no rank holds more than one chunk beyond
// its own shards. Every rank of a data-parallel group asks for the same chunks in the same order.
class ChunkGathers {
 public:
  explicit ChunkGathers(StowSession& s) : s_(s) {}
  // This tensor-parallel rank's part of a parameter or moment, on the first data-parallel rank (null elsewhere).
  const float* part(const stow::ParamDesc& p, Kept kept) {
    int64_t at = 0;
    const stow::ZeroChunkDesc& c = zero_chunk_of(*s_.plan, p, &at);
    if (&c != chunk_ || kept != kept_) {
      whole_.reset();
      const bool keeper = s_.ctx.dp_rank == 0;
      if (keeper) whole_ = stow::HostBuffer<float>(s_.pool, s_.plan->dp * c.shard, "a ZeRO chunk to save");
      const int64_t shard = kept == Kept::Param ? c.shard_offset : kept == Kept::FirstMoment ? c.m_offset : c.v_offset;
      s_.dp_group->gather(s_.model_at(shard, c.on_host), keeper ? whole_.data() : nullptr, 4 * c.shard, 0);
      chunk_ = &c;
      kept_ = kept;
    }
    return whole_.data() == nullptr ? nullptr : whole_.data() + at;
  }

 private:
  StowSession& s_;
  const stow::ZeroChunkDesc* chunk_ = nullptr;
  Kept kept_ = Kept::Param;
  stow::HostBuffer<float> whole_;
};

// Checkpoints hold whole tensors under nanoGPT names and shapes, whatever the tensor-parallel degree and
// ZeRO stage, made one at a time: the first data-parallel rank gathers a ZeRO chunk's shards, the
// tensor-parallel ranks send world rank 0 their parts of a sharded tensor, and it writes the whole
// tensor from them, run by run, before the next is made. Every rank walks the same tensors in the same order, so the
// collectives match; a writer that fails walks on without writing, and says so at the end.
void save(StowSession& s, const std::string& path, int keep) {
  if (!s.at_step_boundary)
    throw Error("not saved: step " + std::to_string(s.step + 1) + " failed half-way, so the state in memory is no step's; " +
                "the last checkpoint written stays as it was");
  s.pool.mark_peak();
  const int64_t held_before = s.pool.current_bytes();
  s.model_mirror = s.device->mirror(resident_model_bytes(*s.plan));
  struct Release {
    stow::Device& device;
    ~Release() { device.release_mirror(); }
  } release{*s.device};
  s.device->pull_mirror();
  const stow::PlanDesc& plan = *s.plan;
  const std::vector<SavedTensor> tensors = saved_tensors(plan);
  const bool writer = s.comm->rank() == 0;
  std::unique_ptr<stow::SafetensorsWriter> file;
  std::string failure;
  bool non_finite = false;
  if (writer) {
    std::vector<stow::TensorShape> shapes;
    for (const SavedTensor& t : tensors) shapes.push_back({t.name, stow::full_shape(plan.params[t.param])});
    int64_t position = s.data ? s.data->position() : s.step_data ? s.step_data->position() : s.data_position;
    stow::remove_stale_temps(path);
    stow::SaveOptions options;
    options.require_finite = true;
    if (keep > 1) options.also_as = stow::step_copy_name(path, s.step);
    try {
      file = std::make_unique<stow::SafetensorsWriter>(path, std::move(shapes),
                                                       std::vector<std::pair<std::string, std::string>>{
                                                           {"format", "pt"},
                                                           {"step", std::to_string(s.step)},
                                                           {"data_position", std::to_string(position)},
                                                           {"model", model_metadata(s, path)},
                                                           {"seed", std::to_string(s.opts.seed)}},
                                                       s.pool, options);
    } catch (const std::exception& e) {
      failure = e.what();
    }
  }
  ChunkGathers chunks(s);
  stow::HostBuffer<float> parts;  // the tensor being saved, as every tensor-parallel rank's part of it
  for (const SavedTensor& t : tensors) {
    const stow::ParamDesc& p = plan.params[t.param];
    parts.reset();
    // This tensor-parallel rank's part, on the first data-parallel rank (the other replicas hold the same).
    const float* local = nullptr;
    if (plan.zero > 0 && (t.kept != Kept::Param || plan.zero == 3)) {
      local = chunks.part(p, t.kept);
    } else if (s.ctx.dp_rank == 0) {
      const int64_t offset = t.kept == Kept::Param ? p.offset : t.kept == Kept::FirstMoment ? p.m_offset : p.v_offset;
      if (t.kept != Kept::Param && p.moments_on_disk) {
        // Read back into the staging buffer of the disk tier (one process: no other rank waits).
        s.disk->read(nullptr, offset, s.disk_stage(), StowSession::disk_moment_bytes(p));
        local = s.disk_stage();
      } else if (t.kept == Kept::Param && p.param_on_disk) {
        local = s.read_disk_param(p);  // through the chunk staging buffer, idle between steps
      } else {
        local = s.model_at(offset, p.on_host);
      }
    }
    if (s.ctx.dp_rank != 0) continue;
    const float* mine = local;  // the parts: this rank's alone, or every tensor-parallel rank's, rank 0's first
    if (p.shard.axis >= 0) {
      if (writer) parts = stow::HostBuffer<float>(s.pool, p.numel * s.ctx.ranks, "the ranks' parts of a tensor to save");
      s.tp_host->gather(local, parts.data(), 4 * p.numel, 0);
      mine = parts.data();
    }
    if (!writer || !failure.empty()) continue;
    try {
      // Written whole, in runs of the ranks' parts.
      file->write_next([&](const stow::SafetensorsWriter::Put& put) {
        stow::for_each_full_run(p, s.ctx.ranks, [&](int rank, int64_t at, int64_t n) { put(mine + rank * p.numel + at, n); });
      });
    } catch (const stow::NonFiniteError& e) {
      failure = std::string("not saved: the state after step ") + std::to_string(s.step) + "'s update is not finite (" +
                e.what() + "); " + path + " stays as it was";
      non_finite = true;
    } catch (const std::exception& e) {
      failure = e.what();
    }
  }
  parts.reset();
  s.save_host_bytes = s.pool.marked_peak_bytes() - held_before;
  if (!failure.empty()) {
    file.reset();  // removes the temporary file
    if (non_finite) throw stow::NonFiniteError(failure);
    throw Error(failure);
  }
  if (!writer) return;
  file->commit();
  if (keep > 1) stow::prune_step_copies(path, keep);
}

void infer(StowSession& s, const int32_t* tokens, int64_t position, float* logits) {
  const stow::ProgramDesc& prog = s.plan->infer;
  if (prog.ninputs > 0) throw Error("this model declares its own inputs and loss: it has no next-token logits to sample from");
  const int64_t n = prog.batch * prog.seq;
  for (int64_t i = 0; i < n; i++)
    if (tokens[i] < 0 || tokens[i] >= s.plan->vocab)
      throw Error("token " + std::to_string(tokens[i]) + " at position " + std::to_string(i) +
                  " is outside the model's vocabulary of " + std::to_string(s.plan->vocab) + " tokens");
  if (position < 0 || position >= n)
    throw Error("position " + std::to_string(position) + " is outside the inference window of " + std::to_string(n) + " tokens");
  int32_t* slot = s.at<int32_t>(prog.tokens_offset);
  s.device->upload(slot, tokens, 4 * n);
  s.ctx.touch(slot, 4 * n);
  int32_t* at = s.at<int32_t>(prog.position_offset);
  const int32_t where = int32_t(position);
  s.device->upload(at, &where, 4);
  s.ctx.touch(at, 4);
  prog.run(s.ctx, stow::StepArgs{});
  s.device->download(logits, s.at<float>(prog.logits_offset), 4 * s.plan->vocab);
}

// The ABI boundary: no exception crosses it; the message is kept for stow_error().
template <typename F>
int guarded(StowSession* s, F&& body) {
  if (s == nullptr) return 1;
  try {
    body();
    s->error.clear();
    return 0;
  } catch (const stow::NonFiniteError& e) {
    s->error = e.what();
    return STOW_NOT_FINITE;
  } catch (const AfterStepError& e) {
    s->error = e.what();
    return STOW_AFTER_STEP;
  } catch (const Error& e) {
    s->error = e.what();
  } catch (const std::bad_alloc&) {
    s->error = "out of host memory";
  } catch (const std::exception& e) {
    s->error = std::string("internal error: ") + e.what();
  }
  return 1;
}

}  // namespace

extern "C" {

StowSession* stow_open(const StowOptions* opts, char* err, int64_t errlen) {
  std::string message;
  try {
    if (opts == nullptr) throw Error("stow_open: no options given");
    auto s = std::make_unique<StowSession>();
    open_session(*s, *opts);
    return s.release();
  } catch (const Error& e) {
    message = e.what();
  } catch (const std::bad_alloc&) {
    message = "out of host memory";
  } catch (const std::exception& e) {
    message = std::string("internal error: ") + e.what();
  }
  if (err != nullptr && errlen > 0) std::snprintf(err, size_t(errlen), "%s", message.c_str());
  return nullptr;
}

int stow_info(StowSession* s, StowInfo* out) {
  return guarded(s, [&] {
    const stow::PlanDesc& p = *s->plan;
    out->vocab = p.vocab;
    out->batch = p.train.batch;
    out->seq = p.train.seq;
    out->infer_seq = p.infer.seq;
    out->arena_bytes = p.arena_bytes;
    out->predicted_train_peak = p.train.predicted_peak;
    out->predicted_infer_peak = p.infer.predicted_peak;
    out->param_count = 0;
    for (int i = 0; i < p.nparams; i++) out->param_count += p.params[i].numel;
  });
}

int stow_step(StowSession* s, StowStepResult* out) { return guarded(s, [&] { take_step(*s, *out); }); }

int stow_save(StowSession* s, const char* path) { return stow_save_kept(s, path, 1); }

int stow_save_kept(StowSession* s, const char* path, int keep) {
  return guarded(s, [&] {
    if (path == nullptr || *path == '\0') throw Error("stow_save: no checkpoint path given");
    save(*s, path, keep);
  });
}

int stow_infer(StowSession* s, const int32_t* tokens, int64_t position, float* logits) {
  return guarded(s, [&] { infer(*s, tokens, position, logits); });
}

int stow_process_rank(int* rank, int* ranks) {
  try {
    stow::Comm& comm = stow::process_comm();
    *rank = comm.rank();
    *ranks = comm.size();
    return 0;
  } catch (const std::exception&) {
    return 1;
  }
}

int stow_agree(StowSession* s, int mine, int* largest) {
  return guarded(s, [&] {
    float value = float(mine);
    s->comm->all_reduce(&value, 1, stow::Reduce::Max);
    *largest = int(value);
  });
}

void stow_abort(int code) { stow::process_comm().abort(code); }

const char* stow_error(StowSession* s) { return s == nullptr ? "no session (stow_open failed)" : s->error.c_str(); }

void stow_close(StowSession* s) { delete s; }

}  // extern "C"
