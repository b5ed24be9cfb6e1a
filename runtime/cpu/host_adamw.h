// AdamW of a chunk held in host memory (offloaded model data), on the host pool's threads: the CPU
// backend's adamw loop (kernels_adamw.cpp) over the pool's shares, bitwise what adamw computes on the
// device. Both backends' adamw_on_host run it on their host worker, and their adamw_on_disk on each piece
// the disk pipeline stages (core/disk_pipeline.h).
#pragma once
#include <cstdint>

#include "core/host_threads.h"
#include "core/kernel_types.h"

namespace stow {

void host_adamw(HostThreads& pool, float* p, const float* g, float* m, float* v, int64_t n, const AdamHyper& h, float gscale,
                bool decay);

}  // namespace stow
