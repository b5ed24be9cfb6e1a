// The standalone `train` binary: a generated plan.cpp linked with the runtime into one executable, so
// that a plan can train without Node (under mpirun, on a cluster node). It drives the same C ABI as
// the Node addon.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <csignal>
#include <cstring>
#include <unistd.h>
#include <chrono>
#include <string>

#include "atomic_file.h"
#include "ctx.h"
#include "host_pool.h"
#include "safetensors.h"
#include "stow_abi.h"

namespace {

// The defaults are runtime/train_defaults.json's, the same as `stow train`'s: codegen/build.ts passes them
// as -D flags (codegen/train_defaults.ts), so there is no second copy here to fall out of step.
#ifndef STOW_DEFAULT_STEPS
#error "compile train_main.cpp with the -D flags of codegen/train_defaults.ts (codegen/build.ts does)"
#endif
#define STOW_TEXT(x) STOW_TEXT_(x)
#define STOW_TEXT_(x) #x

const char* kUsage =
    "usage: train --data FILE [options]\n"
    "  --data FILE            llm.c token file (required)\n"
    "  --steps N              total steps of the run; 0 saves the initialisation (default " STOW_TEXT(STOW_DEFAULT_STEPS) ")\n"
    "  --lr X                 peak learning rate (default " STOW_TEXT(STOW_DEFAULT_LR) ")\n"
    "  --min-lr X             final learning rate of the cosine schedule (default lr * " STOW_TEXT(STOW_DEFAULT_MIN_LR_FRACTION) ")\n"
    "  --lr-schedule S        cosine or constant (default " STOW_DEFAULT_LR_SCHEDULE ")\n"
    "  --warmup-steps N       linear warm-up steps of the cosine schedule (default steps * " STOW_TEXT(STOW_DEFAULT_WARMUP_FRACTION)
    ", at most " STOW_TEXT(STOW_DEFAULT_WARMUP_MAX) ")\n"
    "  --weight-decay X       AdamW weight decay (default " STOW_TEXT(STOW_DEFAULT_WEIGHT_DECAY) ")\n"
    "  --beta1 X --beta2 X    AdamW betas (default " STOW_TEXT(STOW_DEFAULT_BETA1) ", " STOW_TEXT(STOW_DEFAULT_BETA2) ")\n"
    "  --eps X                AdamW epsilon (default " STOW_TEXT(STOW_DEFAULT_EPS) ")\n"
    "  --grad-clip X          clip the global gradient norm to X; 0 disables (default " STOW_TEXT(STOW_DEFAULT_GRAD_CLIP) ")\n"
    "  --seed N               initialisation seed (default " STOW_TEXT(STOW_DEFAULT_SEED) ")\n"
    "  --link-gbps X          emulated host-device link for offloaded model data, gigabits/s each way\n"
    "  --threads N            kernel and BLAS threads; 0: all cores (default 0)\n"
    "  --init F               initial parameters from a safetensors file\n"
    "  --resume F             continue from a checkpoint written by --save\n"
    "  --save F               write a checkpoint at the end of the run, and on SIGINT, SIGTERM, SIGUSR1 or an error\n"
    "  --save-every N         also save every N steps\n"
    "  --save-every-minutes M also save when M minutes have passed since the last save\n"
    "  --keep K               keep the K newest saves as F's <stem>.step<N><ext> too (default 1: F only)\n"
    "  --model-file F --model-sha256 H  the model source (and its hash) that checkpoints name\n"
    "  --metrics F            per-step metrics as JSON lines\n"
    "  --stop-after N         stop after N steps of this run (and save); the schedule still spans --steps\n"
    "  --host-memory BYTES    cap on host memory (data, offloaded model data); 0: none (default 0)\n"
    "A plan compiled with --tp N runs on N ranks: start it with mpirun -np N, srun, or stow train --tp N.\n"
    "Rank 0 prints progress and writes the metrics and the checkpoint. A signal stops every rank after the\n"
    "step, saves, and exits with 128 + the signal; under mpirun, send SIGUSR1 (mpirun forwards it).\n"
    "Exit 2: an error (after saving the last whole state); 3: the state was not finite, so not saved.\n";

struct Flags {
  std::string data, init, resume, save, metrics, model_file, model_sha256;
  long long steps = STOW_DEFAULT_STEPS, threads = 0, stop_after = 0, host_memory = 0, save_every = 0, keep = 1;
  long long warmup_steps = -1;  // -1: derived from steps once the flags are read
  double save_every_minutes = 0;
  unsigned long long seed = STOW_DEFAULT_SEED;
  double lr = STOW_DEFAULT_LR, min_lr = -1, weight_decay = STOW_DEFAULT_WEIGHT_DECAY, beta1 = STOW_DEFAULT_BETA1,
         beta2 = STOW_DEFAULT_BETA2, eps = STOW_DEFAULT_EPS, grad_clip = STOW_DEFAULT_GRAD_CLIP;
  double link_gbps = 0;
  int schedule = -1;  // -1: the default
};

double parse_number(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  errno = 0;
  double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || errno != 0 || !std::isfinite(x))
    throw stow::Error(flag + " expects a number, got '" + v + "'");
  return x;
}

long long parse_integer(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  errno = 0;
  long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno != 0) throw stow::Error(flag + " expects an integer, got '" + v + "'");
  return x;
}

int parse_schedule(const std::string& flag, const std::string& v) {
  if (v == "cosine") return 1;
  if (v == "constant") return 0;
  throw stow::Error(flag + " must be cosine or constant, got '" + v + "'");
}

// Returns false when --help was asked for.
bool parse_flags(int argc, char** argv, Flags& f) {
  for (int i = 1; i < argc; i++) {
    std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") return false;
    std::string value;
    size_t eq = flag.find('=');
    if (flag.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    } else {
      if (i + 1 >= argc) throw stow::Error(flag.rfind("--", 0) == 0 ? flag + " needs a value" : "unexpected argument '" + flag + "'");
      value = argv[++i];
    }
    if (flag == "--data") f.data = value;
    else if (flag == "--init") f.init = value;
    else if (flag == "--resume") f.resume = value;
    else if (flag == "--save") f.save = value;
    else if (flag == "--metrics") f.metrics = value;
    else if (flag == "--model-file") f.model_file = value;
    else if (flag == "--model-sha256") f.model_sha256 = value;
    else if (flag == "--save-every") f.save_every = parse_integer(flag, value);
    else if (flag == "--save-every-minutes") f.save_every_minutes = parse_number(flag, value);
    else if (flag == "--keep") f.keep = parse_integer(flag, value);
    else if (flag == "--steps") f.steps = parse_integer(flag, value);
    else if (flag == "--warmup-steps") {
      f.warmup_steps = parse_integer(flag, value);
      if (f.warmup_steps < 0) throw stow::Error("--warmup-steps must be >= 0, got " + value);
    }
    else if (flag == "--threads") f.threads = parse_integer(flag, value);
    else if (flag == "--stop-after") f.stop_after = parse_integer(flag, value);
    else if (flag == "--host-memory") f.host_memory = parse_integer(flag, value);
    else if (flag == "--seed") {
      long long s = parse_integer(flag, value);
      if (s < 0) throw stow::Error("--seed must be >= 0, got " + value);
      f.seed = static_cast<unsigned long long>(s);
    } else if (flag == "--lr") f.lr = parse_number(flag, value);
    else if (flag == "--min-lr") f.min_lr = parse_number(flag, value);
    else if (flag == "--weight-decay") f.weight_decay = parse_number(flag, value);
    else if (flag == "--beta1") f.beta1 = parse_number(flag, value);
    else if (flag == "--beta2") f.beta2 = parse_number(flag, value);
    else if (flag == "--eps") f.eps = parse_number(flag, value);
    else if (flag == "--grad-clip") f.grad_clip = parse_number(flag, value);
    else if (flag == "--link-gbps") {
      f.link_gbps = parse_number(flag, value);
      if (f.link_gbps <= 0) throw stow::Error("--link-gbps must be > 0, got " + value);
    }
    else if (flag == "--lr-schedule") f.schedule = parse_schedule(flag, value);
    else {
      throw stow::Error("unknown flag " + flag + " (see --help)");
    }
  }
  if (f.data.empty()) throw stow::Error("--data FILE is required (see --help)");
  if (f.threads < 0 || f.threads > 4096) throw stow::Error("--threads must lie in [0, 4096], got " + std::to_string(f.threads));
  if (f.stop_after < 0) throw stow::Error("--stop-after must be >= 1, got " + std::to_string(f.stop_after));
  if (f.host_memory < 0) throw stow::Error("--host-memory must be >= 0, got " + std::to_string(f.host_memory));
  if (f.steps < 0) throw stow::Error("--steps must be >= 0, got " + std::to_string(f.steps));
  if (f.save_every < 0) throw stow::Error("--save-every must be >= 1, got " + std::to_string(f.save_every));
  if (!(f.save_every_minutes >= 0)) throw stow::Error("--save-every-minutes must be > 0");
  if (f.keep < 1 || f.keep > 1000000) throw stow::Error("--keep must be >= 1, got " + std::to_string(f.keep));
  if ((f.save_every > 0 || f.save_every_minutes > 0) && f.save.empty())
    throw stow::Error("--save-every and --save-every-minutes need --save FILE: where to save");
  if (f.min_lr < 0) f.min_lr = f.lr * STOW_DEFAULT_MIN_LR_FRACTION;
  if (f.warmup_steps < 0)
    f.warmup_steps = std::min<long long>(STOW_DEFAULT_WARMUP_MAX, (long long)std::floor(double(f.steps) * STOW_DEFAULT_WARMUP_FRACTION));
  if (f.schedule < 0) f.schedule = parse_schedule("default lr_schedule", STOW_DEFAULT_LR_SCHEDULE);
  return true;
}

// What a rank wants after a step, agreed over the ranks by the largest (stow_agree).
constexpr int kSaveDue = 1, kSignalled = 100, kFailed = 1000;

volatile std::sig_atomic_t g_signal = 0;  // the first of SIGINT, SIGTERM, SIGUSR1 received

void on_signal(int signal) {
  if (g_signal == 0) g_signal = signal;
}

// SIGINT and SIGTERM, and SIGUSR1, which mpirun forwards to the ranks (it ends the job on the others):
// finish the step, save, exit. SA_RESTART: a read or write the signal interrupts carries on.
void watch_signals() {
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  for (int signal : {SIGINT, SIGTERM, SIGUSR1}) sigaction(signal, &action, nullptr);
}

// The ABI does not report the step a session starts from, so read it from the checkpoint to know how
// many of --steps remain. stow_open has already validated the file by the time this runs.
long long resumed_step(const std::string& path) {
  stow::HostPool pool;
  stow::SafetensorsFile f(path, pool);
  return std::strtoll(f.metadata("step")->c_str(), nullptr, 10);
}

int run(int argc, char** argv, int rank, int ranks) {
  Flags f;
  if (!parse_flags(argc, argv, f)) {
    if (rank == 0) std::fputs(kUsage, stdout);
    return 0;
  }
  StowOptions o{};
  o.data_path = f.data.c_str();
  o.init_path = f.init.empty() ? nullptr : f.init.c_str();
  o.resume_path = f.resume.empty() ? nullptr : f.resume.c_str();
  o.metrics_path = f.metrics.empty() ? nullptr : f.metrics.c_str();
  o.seed = f.seed;
  o.threads = int(f.threads);
  o.steps = f.steps;
  o.lr = float(f.lr);
  o.min_lr = float(f.min_lr);
  o.lr_schedule = f.schedule;
  o.warmup_steps = f.warmup_steps;
  o.weight_decay = float(f.weight_decay);
  o.beta1 = float(f.beta1);
  o.beta2 = float(f.beta2);
  o.eps = float(f.eps);
  o.grad_clip = float(f.grad_clip);
  o.link_gbps = f.link_gbps;
  o.host_memory = f.host_memory;

  o.model_path = f.model_file.empty() ? nullptr : f.model_file.c_str();
  o.model_sha256 = f.model_sha256.empty() ? nullptr : f.model_sha256.c_str();

  // A save folder that cannot be written is found now, not after the last step.
  if (!f.save.empty()) stow::AtomicFile probe(f.save);

  char err[4096] = {0};
  StowSession* s = stow_open(&o, err, sizeof err);
  if (s == nullptr) throw stow::Error(err);
  struct Closer {
    StowSession* s;
    ~Closer() { stow_close(s); }
  } closer{s};
  watch_signals();

  long long first = f.resume.empty() ? 1 : resumed_step(f.resume) + 1;
  long long last = f.stop_after > 0 ? std::min(f.steps, first - 1 + f.stop_after) : f.steps;
  auto last_save = std::chrono::steady_clock::now();
  // Every rank saves (a collective) and stops at the same step: what each wants is agreed first.
  auto save = [&](long long step) -> int {
    int rc = f.save.empty() ? 0 : stow_save_kept(s, f.save.c_str(), int(f.keep));
    const std::string why = rc != 0 ? stow_error(s) : "";
    int worst = rc;
    if (stow_agree(s, rc, &worst) != 0) throw stow::Error(stow_error(s));
    if (rank == 0 && rc == 0 && !f.save.empty()) std::printf("saved %s at step %lld\n", f.save.c_str(), step);
    if (rank == 0 && rc != 0) std::fprintf(stderr, "train: %s\n", why.c_str());
    std::fflush(stdout);
    last_save = std::chrono::steady_clock::now();
    return worst;
  };
  StowStepResult r{};
  std::string failure;
  long long done = first - 1;
  for (long long step = first; step <= last; step++) {
    int rc = stow_step(s, &r);
    // Under --tp a step that failed half-way may have left other ranks inside a collective: end the job.
    if (rc != 0 && rc != STOW_AFTER_STEP && ranks > 1) throw stow::Error(stow_error(s));
    if (rc != 0) failure = stow_error(s);
    else if (rank == 0)
      std::printf("step %lld/%lld loss %.4f lr %.1e %.0f tok/s\n", (long long)r.step, f.steps, r.loss, r.lr,
                  r.seconds > 0 ? double(r.tokens) / r.seconds : 0.0);
    std::fflush(stdout);
    if (rc == 0 || rc == STOW_AFTER_STEP) done = step;
    const double minutes = std::chrono::duration<double>(std::chrono::steady_clock::now() - last_save).count() / 60;
    const bool due = (f.save_every > 0 && step % f.save_every == 0) || (f.save_every_minutes > 0 && minutes >= f.save_every_minutes);
    // Agreed by the largest: an error beats a signal, which beats a periodic save.
    const int mine = rc != 0 ? kFailed : g_signal != 0 ? kSignalled + g_signal : due && step < last ? kSaveDue : 0;
    int agreed = 0;
    if (stow_agree(s, mine, &agreed) != 0) throw stow::Error(stow_error(s));
    if (agreed == 0) continue;
    if (agreed == kSaveDue) {
      const int saved = save(step);
      if (saved == STOW_NOT_FINITE) return 3;
      if (saved != 0) return 2;
      continue;
    }
    // Stopping: keep the last whole state (a step that failed half-way has none, and save says so),
    // after saying why, so that the reason is the first message.
    if (agreed == kFailed && rank == 0 && !failure.empty()) std::fprintf(stderr, "train: %s\n", failure.c_str());
    const int saved = done >= first ? save(done) : 0;
    if (agreed == kFailed) return saved == STOW_NOT_FINITE ? 3 : 2;
    const int signal = agreed - kSignalled;
    if (rank == 0) std::printf("stopped by signal %d after step %lld\n", signal, done);
    std::fflush(stdout);
    return saved == STOW_NOT_FINITE ? 3 : saved != 0 ? 2 : 128 + signal;
  }
  // A tensor-parallel job's launcher (stow train --tp) reports rank 0's high-water mark from this line.
  StowInfo info{};
  if (ranks > 1 && rank == 0 && first <= last && stow_info(s, &info) == 0)
    std::printf("device high-water %lld bytes (planned %lld), final loss %.4f\n", (long long)r.device_peak_bytes,
                (long long)info.predicted_train_peak, r.loss);
  const int saved = save(done);
  return saved == STOW_NOT_FINITE ? 3 : saved != 0 ? 2 : 0;
}

}  // namespace

// OpenBLAS and libgomp read their environment when they are loaded, which for this binary is before
// main. So set what they should read and start again, once (src/cli/runtime_env.ts explains both
// choices and does the same for the stow CLI); values the user set are left alone:
// - OPENBLAS_CORETYPE when Debian's OpenBLAS 0.3.21 fell back to its generic "Prescott" kernels on a
//   CPU with AVX-512 or AVX2 (about 5x slower);
// - OMP_WAIT_POLICY=passive, so idle OpenMP threads do not spin against OpenBLAS's threads.
// Weak: the CUDA backend's binary does not link OpenBLAS, and then there is nothing to select.
extern "C" __attribute__((weak)) char* openblas_get_corename(void);
static void set_runtime_env(char** argv) {
  bool changed = false;
  if (!std::getenv("OMP_WAIT_POLICY")) {
    setenv("OMP_WAIT_POLICY", "passive", 1);
    changed = true;
  }
  if (openblas_get_corename != nullptr && !std::getenv("OPENBLAS_CORETYPE") &&
      std::strcmp(openblas_get_corename(), "Prescott") == 0) {
    const char* core = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") ? "SkylakeX"
                       : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? "Haswell" : nullptr;
    if (core) {
      setenv("OPENBLAS_CORETYPE", core, 1);
      changed = true;
    }
  }
  if (changed) execv("/proc/self/exe", argv);  // returns only on failure: then run as we are
}

int main(int argc, char** argv) {
  set_runtime_env(argv);
  int rank = 0, ranks = 1;
  if (stow_process_rank(&rank, &ranks) != 0) {
    std::fprintf(stderr, "train: cannot start the communicator of a tensor-parallel job\n");
    return 2;
  }
  try {
    return run(argc, argv, rank, ranks);
  } catch (const std::exception& e) {
    if (ranks == 1) {
      std::fprintf(stderr, "train: %s\n", e.what());
      return 2;
    }
    // The other ranks may be waiting for this one in a collective: end them all.
    std::fprintf(stderr, "train: rank %d of %d failed: %s\n", rank, ranks, e.what());
    std::fflush(stderr);
    stow_abort(2);
  }
}
