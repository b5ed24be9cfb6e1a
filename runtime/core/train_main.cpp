// The standalone `train` binary: a generated plan.cpp linked with the runtime into one executable, so
// that a plan can train without Node (under mpirun, on a cluster node). It drives the same C ABI as
// the Node addon.
#include <algorithm>
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
#include "json_mini.h"
#include "metrics.h"
#include "safetensors.h"
#include "stow_abi.h"
#include "train_flags.h"

namespace {

const std::string kUsage = std::string("usage: train --data FILE [options]\n") + stow::kTrainFlagsUsage +
    "Progress goes to stdout as JSON lines, one object per event: {\"event\":\"step\",...} after each step (the\n"
    "fields of --metrics), \"saved\", \"stopped\" (by a signal), \"end\", and \"error\" (also said on stderr).\n"
    "A plan compiled with --tp N runs on N ranks: start it with mpirun -np N, srun, or stow train --tp N.\n"
    "Rank 0 reports progress and writes the metrics and the checkpoint. A signal stops every rank after the\n"
    "step, saves, and exits with 128 + the signal; under mpirun, send SIGUSR1 (mpirun forwards it).\n"
    "Exit 2: an error (after saving the last whole state); 3: the state was not finite, so not saved.\n";

// Checks between flags, which the run contract does not declare one by one.
void check_flags(const stow::TrainFlags& f) {
  if ((f.save_every > 0 || f.save_every_minutes > 0) && f.save.empty())
    throw stow::Error("--save-every and --save-every-minutes need --save FILE: where to save");
}

// One event of the run as a JSON line on stdout, flushed so that a launcher reading the pipe sees it now.
void emit(const std::string& json) {
  std::fputs((json + "\n").c_str(), stdout);
  std::fflush(stdout);
}

// An error, said to a person on stderr and to the launcher as an event naming the rank.
// `abort`: this rank ends the whole job, so the other ranks stop without a word.
void report_error(const std::string& message, int rank, int ranks, bool abort) {
  if (abort) std::fprintf(stderr, "train: rank %d of %d failed: %s\n", rank, ranks, message.c_str());
  else std::fprintf(stderr, "train: %s\n", message.c_str());
  std::fflush(stderr);
  emit("{\"event\":\"error\",\"rank\":" + std::to_string(rank) + ",\"abort\":" + (abort ? "true" : "false") +
       ",\"message\":" + stow::json_quote(message) + "}");
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
  stow::TrainFlags f;
  if (!stow::parse_train_flags(argc, argv, f)) {
    if (rank == 0) std::fputs(kUsage.c_str(), stdout);
    return 0;
  }
  check_flags(f);
  if (f.print_options) {
    if (rank == 0) emit(stow::options_json(f));
    return 0;
  }
  const StowOptions o = stow::session_options(f);
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

  long long first = f.resume_path.empty() ? 1 : resumed_step(f.resume_path) + 1;
  long long last = f.stop_after > 0 ? std::min(f.steps, first - 1 + f.stop_after) : f.steps;
  auto last_save = std::chrono::steady_clock::now();
  // Every rank saves (a collective) and stops at the same step: what each wants is agreed first.
  auto save = [&](long long step) -> int {
    int rc = f.save.empty() ? 0 : stow_save_kept(s, f.save.c_str(), int(f.keep));
    const std::string why = rc != 0 ? stow_error(s) : "";
    int worst = rc;
    if (stow_agree(s, rc, &worst) != 0) throw stow::Error(stow_error(s));
    if (rank == 0 && rc == 0 && !f.save.empty())
      emit("{\"event\":\"saved\",\"path\":" + stow::json_quote(f.save) + ",\"step\":" + std::to_string(step) + "}");
    if (rank == 0 && rc != 0) report_error(why, rank, ranks, false);
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
    else if (rank == 0) emit("{\"event\":\"step\",\"steps\":" + std::to_string(f.steps) + "," + stow::metrics_json(r).substr(1));
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
    if (agreed == kFailed && rank == 0 && !failure.empty()) report_error(failure, rank, ranks, false);
    const int saved = done >= first ? save(done) : 0;
    if (agreed == kFailed) return saved == STOW_NOT_FINITE ? 3 : 2;
    const int signal = agreed - kSignalled;
    if (rank == 0) emit("{\"event\":\"stopped\",\"signal\":" + std::to_string(signal) + ",\"step\":" + std::to_string(done) + "}");
    return saved == STOW_NOT_FINITE ? 3 : saved != 0 ? 2 : 128 + signal;
  }
  const int saved = save(done);
  if (saved != 0) return saved == STOW_NOT_FINITE ? 3 : 2;
  // The last step's loss and measured high-water mark beside the planned one, when this run took a step.
  StowInfo info{};
  std::string measured;
  if (first <= last && stow_info(s, &info) == 0) {
    char loss[32];
    std::snprintf(loss, sizeof loss, "%.9g", r.loss);
    measured = std::string(",\"loss\":") + loss + ",\"device_peak_bytes\":" + std::to_string(r.device_peak_bytes) +
               ",\"planned_peak_bytes\":" + std::to_string(info.predicted_train_peak);
  }
  if (rank == 0) emit("{\"event\":\"end\",\"step\":" + std::to_string(done) + measured + "}");
  return 0;
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
    // With other ranks, they may be waiting for this one in a collective: end them all.
    report_error(e.what(), rank, ranks, ranks > 1);
    if (ranks == 1) return 2;
    stow_abort(2);
  }
}
