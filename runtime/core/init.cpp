#include "init.h"

#include <cmath>
#include <string>

#include "shard.h"

namespace stow {

namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// xoshiro256** (Blackman and Vigna), seeded through splitmix64 as its authors recommend.
struct Xoshiro256 {
  uint64_t s[4];
  explicit Xoshiro256(uint64_t seed) {
    for (uint64_t& w : s) w = splitmix64(seed);
  }
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t next() {
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
  }
  // Uniform in (0, 1]: never 0, so log() below stays finite.
  double uniform_open0() { return double((next() >> 11) + 1) * 0x1.0p-53; }
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }
};

// Box-Muller, both values of each pair used.
void fill_normal(float* out, int64_t n, float std_dev, uint64_t stream_seed) {
  Xoshiro256 rng(stream_seed);
  for (int64_t i = 0; i < n; i += 2) {
    double radius = std::sqrt(-2.0 * std::log(rng.uniform_open0()));
    double angle = 2.0 * 3.14159265358979323846 * rng.uniform();
    out[i] = float(std_dev * radius * std::cos(angle));
    if (i + 1 < n) out[i + 1] = float(std_dev * radius * std::sin(angle));
  }
}

// A parameter's full tensor, as one stream of the seed: the same whatever the tensor-parallel degree.
void fill_full(const ParamDesc& p, int index, float* out, int64_t n, uint64_t seed) {
  if (p.init_kind == INIT_NORMAL) {
    uint64_t mix = seed ^ (0xD1B54A32D192ED03ull * uint64_t(index + 1));
    fill_normal(out, n, p.init_std, splitmix64(mix));
  } else {
    float value = p.init_kind == INIT_ONES ? 1.0f : 0.0f;
    for (int64_t k = 0; k < n; k++) out[k] = value;
  }
}

}  // namespace

void init_parameter(const PlanDesc& plan, int index, float* out, uint64_t seed, int rank, HostPool& pool) {
  const ParamDesc& p = plan.params[index];
  if (p.shard.axis < 0) return fill_full(p, index, out, p.numel, seed);
  HostBuffer<float> full(pool, full_numel(p), "a full parameter to initialise a shard from");
  fill_full(p, index, full.data(), full.size(), seed);
  take_shard(p, rank, full.data(), out);
}

void init_parameters(const PlanDesc& plan, uint8_t* arena, uint8_t* host, uint64_t seed, int rank, HostPool& pool) {
  auto region = [&](const ParamDesc& p) { return reinterpret_cast<float*>((p.on_host ? host : arena) + p.offset); };
  // Parameters are independent streams, so they may be filled in parallel without changing a value.
#pragma omp parallel for schedule(dynamic, 1)
  for (int i = 0; i < plan.nparams; i++) {
    const ParamDesc& p = plan.params[i];
    if (p.param_on_disk) continue;  // the session draws it into its disk blocks
    if (p.shard.axis < 0) fill_full(p, i, region(p), p.numel, seed);
  }
  // A rank's part of a sharded parameter is cut from the full tensor, drawn whole.
  for (int i = 0; i < plan.nparams; i++) {
    const ParamDesc& p = plan.params[i];
    if (p.shard.axis >= 0) init_parameter(plan, i, region(p), seed, rank, pool);
  }
}

}  // namespace stow
