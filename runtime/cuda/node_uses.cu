// node_uses (cuda_kernels.h): the emulated target's race checker sees each node's arena ranges; a GPU
// build ignores them.
#include <cuda_runtime.h>

#include <vector>

#include "cuda_kernels.h"
#include "runtime.h"

namespace stow::cuda {

#ifdef STOW_CUDA_EMULATED
void node_uses(Ctx& c, std::initializer_list<ArenaRange> reads, std::initializer_list<ArenaRange> writes) {
  std::vector<emu::Range> r, w;
  for (const ArenaRange& a : reads) r.push_back({a.ptr, a.bytes});
  for (const ArenaRange& a : writes) w.push_back({a.ptr, a.bytes});
  const std::string race = emu::node_accesses(runtime(c).compute(), c.node, r, w);
  if (!race.empty()) throw Error(race);
}
#else
void node_uses(Ctx&, std::initializer_list<ArenaRange>, std::initializer_list<ArenaRange>) {}
#endif

}  // namespace stow::cuda
