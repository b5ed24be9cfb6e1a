// Host AdamW against the memory bandwidth: the runtime's host_adamw (runtime/cpu/kernels_adamw.cpp on
// the host pool of runtime/core/host_threads.cpp, what adamw_on_host runs on an offloaded chunk) on
// arrays far beyond any cache, beside an OpenMP triad a = b + s*c on the same arrays' memory. Rounds of
// (triad, AdamW on each pool size) keep a burst of load on the shared machine from favouring one of them.
// Prints one JSON line: elements, rounds, the triad's bytes/s (12 counted an element, as STREAM does)
// and per pool size the median seconds of one AdamW pass (28 bytes counted an element: p, g, m, v read,
// p, m, v written).
// Usage: host_adamw ELEMENTS ROUNDS THREADS...
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "cpu/host_adamw.h"

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::vector<float> filled(int64_t n, float base) {
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; i++) x[size_t(i)] = base + float(i % 7) * 1e-3f;
  return x;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: host_adamw ELEMENTS ROUNDS THREADS...\n");
    return 2;
  }
  const int64_t n = std::atoll(argv[1]);
  const int rounds = std::atoi(argv[2]);
  std::vector<int> pools;
  for (int i = 3; i < argc; i++) pools.push_back(std::atoi(argv[i]));
  if (n <= 0 || rounds <= 0 || std::any_of(pools.begin(), pools.end(), [](int t) { return t <= 0; })) {
    std::fprintf(stderr, "host_adamw: every argument must be positive\n");
    return 2;
  }
  std::vector<float> p = filled(n, 0.5f), g = filled(n, 0.01f), m = filled(n, 0.0f), v = filled(n, 0.0f);
  std::vector<std::unique_ptr<stow::HostThreads>> pool;
  for (int t : pools) pool.push_back(std::make_unique<stow::HostThreads>(t));
  stow::AdamHyper h{6e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 1};

  std::vector<double> triad;
  std::vector<std::vector<double>> adamw(pools.size());
  for (int r = -1; r < rounds; r++) {  // round -1 warms up
    float *a = p.data(), *b = g.data(), *c = m.data();
    double t0 = now();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) a[i] = b[i] + 0.5f * c[i];
    if (r >= 0) triad.push_back(now() - t0);
    for (size_t k = 0; k < pools.size(); k++) {
      h.t++;
      t0 = now();
      stow::host_adamw(*pool[k], p.data(), g.data(), m.data(), v.data(), n, h, 1.0f, true);
      if (r >= 0) adamw[k].push_back(now() - t0);
    }
  }
  std::string per_pool;
  for (size_t k = 0; k < pools.size(); k++) {
    char item[96];
    std::snprintf(item, sizeof item, "%s{\"threads\":%d,\"seconds\":%.6g}", k ? "," : "", pools[k], median(adamw[k]));
    per_pool += item;
  }
  std::printf("{\"elements\":%lld,\"rounds\":%d,\"triad_threads\":%d,\"triad_bytes_per_s\":%.6g,\"adamw\":[%s]}\n", (long long)n, rounds,
              omp_get_max_threads(), 12.0 * double(n) / median(triad), per_pool.c_str());
  return 0;
}
