// Generated from runtime/run_contract.ts by runtime/contract/render.ts (npm run gen:contract); do not edit.
// The `train` binary's flags (runtime/core/train_main.cpp), one per option of the run contract: its default,
// how its value is read and checked, and the session options the flags make.
#pragma once
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "ctx.h"
#include "json_mini.h"
#include "stow_abi.h"

namespace stow {

struct TrainFlags {
  std::string data_path;
  std::string init_path;
  std::string resume_path;
  std::string metrics_path;
  long long seed = 1337;
  long long threads = 0;
  long long steps = 1000;
  double lr = 0.002;
  std::optional<double> min_lr;  // absent: lr * 0.1
  int lr_schedule = 1;  // cosine
  std::optional<long long> warmup_steps;  // absent: steps * 0.1, at most 20
  double weight_decay = 0.1;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double grad_clip = 1;
  long long host_memory = 0;
  std::string disk_path;
  double link_gbps = 0;
  std::string model_path;
  std::string model_sha256;
  std::string save;
  long long save_every = 0;
  double save_every_minutes = 0;
  long long keep = 1;
  long long stop_after = 0;
  bool print_options = false;  // --print-options: print the options as resolved, as JSON, and exit
};

const char* const kTrainFlagsUsage =
    "  --data FILE            llm.c token file (magic 20240520, version 1); a session without one only infers\n"
    "  --init FILE            initial parameters from a safetensors file under nanoGPT names; absent: seeded\n"
    "  --resume FILE          continue from a checkpoint written by stow_save (--save): parameters, moments, step, data position\n"
    "  --metrics FILE         write per-step metrics here as JSON lines\n"
    "  --seed N               initialisation seed (default 1337)\n"
    "  --threads N            kernel and BLAS threads; 0: all cores (default 0)\n"
    "  --steps N              total steps of the run; 0 saves the initialisation (default 1000)\n"
    "  --lr X                 peak learning rate (default 0.002)\n"
    "  --min-lr X             final learning rate of the cosine schedule (default lr * 0.1)\n"
    "  --lr-schedule NAME     constant, or linear warm-up then cosine decay to min_lr (default cosine)\n"
    "  --warmup-steps N       linear warm-up steps of the cosine schedule (default steps * 0.1, at most 20)\n"
    "  --weight-decay X       AdamW weight decay (default 0.1)\n"
    "  --beta1 X              AdamW beta1 (default 0.9)\n"
    "  --beta2 X              AdamW beta2 (default 0.95)\n"
    "  --eps X                AdamW epsilon (default 1e-8)\n"
    "  --grad-clip X          clip the global gradient norm to this; 0 disables (a plan compiled without clipping rejects > 0) (default 1)\n"
    "  --host-memory N        cap on host memory in bytes (data, offloaded model data); 0: none (default 0)\n"
    "  --disk-path DIR        folder for the disk tier's scratch file, which plans keeping model data on disk need (removed at exit)\n"
    "  --link-gbps X          emulated host-device link for offloaded model data, gigabits/s each way; 0: unthrottled (default 0)\n"
    "  --model-file FILE      the model file, which checkpoints record relative to their folder\n"
    "  --model-sha256 HEX     the model file's sha256, which checkpoints record beside it\n"
    "  --save FILE            write a checkpoint here at the end, and on SIGINT, SIGTERM, SIGUSR1 or an error\n"
    "  --save-every N         also save every this many steps; 0: never (default 0)\n"
    "  --save-every-minutes X also save when this many minutes have passed since the last save; 0: never (default 0)\n"
    "  --keep K               keep the K newest saves, also named <stem>.step<N><ext> after the save file (1: the save file only) (default 1)\n"
    "  --stop-after N         stop after this many steps of this run (and save); the schedule still spans steps; 0: run to the end (default 0)\n"
    "  --print-options        print every option as resolved, defaults included, as one JSON object, and exit\n";

namespace train_flags_detail {

inline double number(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  errno = 0;
  double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || errno != 0 || !std::isfinite(x)) throw Error(flag + " expects a number, got '" + v + "'");
  return x;
}

inline long long integer(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  errno = 0;
  long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno != 0) throw Error(flag + " expects an integer, got '" + v + "'");
  return x;
}

// %.17g: the double exactly, so a float field prints as the float the session holds.
inline std::string json_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

inline std::string json_string(const char* s) { return s == nullptr ? "null" : json_quote(s); }

}  // namespace train_flags_detail

// Reads argv into f; returns false when --help was asked for. A bad value throws stow::Error naming its flag.
inline bool parse_train_flags(int argc, char** argv, TrainFlags& f) {
  using namespace train_flags_detail;
  for (int i = 1; i < argc; i++) {
    std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") return false;
    if (flag == "--print-options") {
      f.print_options = true;
      continue;
    }
    std::string value;
    size_t eq = flag.find('=');
    if (flag.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    } else {
      if (i + 1 >= argc) throw Error(flag.rfind("--", 0) == 0 ? flag + " needs a value" : "unexpected argument '" + flag + "'");
      value = argv[++i];
    }
    if (flag == "--data") {
      f.data_path = value;
    } else if (flag == "--init") {
      f.init_path = value;
    } else if (flag == "--resume") {
      f.resume_path = value;
    } else if (flag == "--metrics") {
      f.metrics_path = value;
    } else if (flag == "--seed") {
      const long long v = integer(flag, value);
      if (v < 0) throw Error(flag + " must be >= 0, got " + value);
      f.seed = v;
    } else if (flag == "--threads") {
      const long long v = integer(flag, value);
      if (v < 0 || v > 4096) throw Error(flag + " must lie in [0, 4096], got " + value);
      f.threads = v;
    } else if (flag == "--steps") {
      const long long v = integer(flag, value);
      if (v < 0) throw Error(flag + " must be >= 0, got " + value);
      f.steps = v;
    } else if (flag == "--lr") {
      const double v = number(flag, value);
      f.lr = v;
    } else if (flag == "--min-lr") {
      const double v = number(flag, value);
      f.min_lr = v;
    } else if (flag == "--lr-schedule") {
      if (value == "constant") f.lr_schedule = 0;
      else if (value == "cosine") f.lr_schedule = 1;
      else throw Error(flag + " must be constant or cosine, got '" + value + "'");
    } else if (flag == "--warmup-steps") {
      const long long v = integer(flag, value);
      if (v < 0) throw Error(flag + " must be >= 0, got " + value);
      f.warmup_steps = v;
    } else if (flag == "--weight-decay") {
      const double v = number(flag, value);
      f.weight_decay = v;
    } else if (flag == "--beta1") {
      const double v = number(flag, value);
      f.beta1 = v;
    } else if (flag == "--beta2") {
      const double v = number(flag, value);
      f.beta2 = v;
    } else if (flag == "--eps") {
      const double v = number(flag, value);
      f.eps = v;
    } else if (flag == "--grad-clip") {
      const double v = number(flag, value);
      f.grad_clip = v;
    } else if (flag == "--host-memory") {
      const long long v = integer(flag, value);
      if (v < 0) throw Error(flag + " must be >= 0, got " + value);
      f.host_memory = v;
    } else if (flag == "--disk-path") {
      f.disk_path = value;
    } else if (flag == "--link-gbps") {
      const double v = number(flag, value);
      if (v < 0) throw Error(flag + " must be >= 0, got " + value);
      f.link_gbps = v;
    } else if (flag == "--model-file") {
      f.model_path = value;
    } else if (flag == "--model-sha256") {
      f.model_sha256 = value;
    } else if (flag == "--save") {
      f.save = value;
    } else if (flag == "--save-every") {
      const long long v = integer(flag, value);
      if (v < 0) throw Error(flag + " must be >= 0, got " + value);
      f.save_every = v;
    } else if (flag == "--save-every-minutes") {
      const double v = number(flag, value);
      if (v < 0) throw Error(flag + " must be >= 0, got " + value);
      f.save_every_minutes = v;
    } else if (flag == "--keep") {
      const long long v = integer(flag, value);
      if (v < 1 || v > 1000000) throw Error(flag + " must lie in [1, 1000000], got " + value);
      f.keep = v;
    } else if (flag == "--stop-after") {
      const long long v = integer(flag, value);
      if (v < 0) throw Error(flag + " must be >= 0, got " + value);
      f.stop_after = v;
    } else {
      throw Error("unknown flag " + flag + " (see --help)");
    }
  }
  if (!f.print_options && f.data_path.empty()) throw Error("--data FILE is required (see --help)");
  if (!f.min_lr) f.min_lr = stow_derived_min_lr(double(f.lr));
  if (!f.warmup_steps) f.warmup_steps = stow_derived_warmup_steps(double(f.steps));
  return true;
}

// The options of the session these flags open; its strings point into f.
inline StowOptions session_options(const TrainFlags& f) {
  StowOptions o{};
  o.data_path = f.data_path.empty() ? nullptr : f.data_path.c_str();
  o.init_path = f.init_path.empty() ? nullptr : f.init_path.c_str();
  o.resume_path = f.resume_path.empty() ? nullptr : f.resume_path.c_str();
  o.metrics_path = f.metrics_path.empty() ? nullptr : f.metrics_path.c_str();
  o.seed = uint64_t(f.seed);
  o.threads = int(f.threads);
  o.steps = int64_t(f.steps);
  o.lr = float(f.lr);
  o.min_lr = float(*f.min_lr);
  o.lr_schedule = int(f.lr_schedule);
  o.warmup_steps = int64_t(*f.warmup_steps);
  o.weight_decay = float(f.weight_decay);
  o.beta1 = float(f.beta1);
  o.beta2 = float(f.beta2);
  o.eps = float(f.eps);
  o.grad_clip = float(f.grad_clip);
  o.host_memory = int64_t(f.host_memory);
  o.disk_path = f.disk_path.empty() ? nullptr : f.disk_path.c_str();
  o.link_gbps = double(f.link_gbps);
  o.profile_path = nullptr;  // no flag: the default
  o.profile_steps = 0;  // no flag: the default
  o.model_path = f.model_path.empty() ? nullptr : f.model_path.c_str();
  o.model_sha256 = f.model_sha256.empty() ? nullptr : f.model_sha256.c_str();
  return o;
}

// What --print-options prints: the session's options as the plan receives them, then the loop's, by C name.
inline std::string options_json(const TrainFlags& f) {
  using namespace train_flags_detail;
  const StowOptions o = session_options(f);
  std::string json = "{";
  json += "\"data_path\":";
  json += json_string(o.data_path);
  json += ",\"init_path\":";
  json += json_string(o.init_path);
  json += ",\"resume_path\":";
  json += json_string(o.resume_path);
  json += ",\"metrics_path\":";
  json += json_string(o.metrics_path);
  json += ",\"seed\":";
  json += std::to_string(o.seed);
  json += ",\"threads\":";
  json += std::to_string(o.threads);
  json += ",\"steps\":";
  json += std::to_string(o.steps);
  json += ",\"lr\":";
  json += json_number(double(o.lr));
  json += ",\"min_lr\":";
  json += json_number(double(o.min_lr));
  json += ",\"lr_schedule\":";
  if (o.lr_schedule == 0) json += "\"constant\"";
  else if (o.lr_schedule == 1) json += "\"cosine\"";
  json += ",\"warmup_steps\":";
  json += std::to_string(o.warmup_steps);
  json += ",\"weight_decay\":";
  json += json_number(double(o.weight_decay));
  json += ",\"beta1\":";
  json += json_number(double(o.beta1));
  json += ",\"beta2\":";
  json += json_number(double(o.beta2));
  json += ",\"eps\":";
  json += json_number(double(o.eps));
  json += ",\"grad_clip\":";
  json += json_number(double(o.grad_clip));
  json += ",\"host_memory\":";
  json += std::to_string(o.host_memory);
  json += ",\"disk_path\":";
  json += json_string(o.disk_path);
  json += ",\"link_gbps\":";
  json += json_number(double(o.link_gbps));
  json += ",\"profile_path\":";
  json += json_string(o.profile_path);
  json += ",\"profile_steps\":";
  json += std::to_string(o.profile_steps);
  json += ",\"model_path\":";
  json += json_string(o.model_path);
  json += ",\"model_sha256\":";
  json += json_string(o.model_sha256);
  json += ",\"save\":";
  json += json_string(f.save.empty() ? nullptr : f.save.c_str());
  json += ",\"save_every\":";
  json += std::to_string(f.save_every);
  json += ",\"save_every_minutes\":";
  json += json_number(double(f.save_every_minutes));
  json += ",\"keep\":";
  json += std::to_string(f.keep);
  json += ",\"stop_after\":";
  json += std::to_string(f.stop_after);
  return json + "}";
}

}  // namespace stow
