// AdamW of a chunk held in host memory (offloaded model data), on the host pool's threads: the CPU
// backend's adamw loop (kernels_adamw.cpp) over the pool's shares, bitwise what adamw computes on the
// device. Both backends' adamw_on_host run it on their host worker.
#pragma once
#include <cstdint>

#include "core/disk_tier.h"
#include "core/host_threads.h"
#include "core/kernel_types.h"

namespace stow {

void host_adamw(HostThreads& pool, float* p, const float* g, float* m, float* v, int64_t n, const AdamHyper& h, float gscale,
                bool decay);

// The same with the moments in the disk tier (at byte offsets m_disk, v_disk): read into the staging
// buffers, updated, written back; with the parameter there too (p_disk >= 0), the blocks holding it go
// through p_stage alike; with the gradient there (g_disk >= 0), it is read into g_stage. Runs on the
// host worker, which runs one job at a time, so one set of staging buffers serves every parameter.
void host_adamw_on_disk(HostThreads& pool, DiskTier& disk, float* p, int64_t p_disk, float* p_stage, const float* g, int64_t g_disk,
                        float* g_stage, int64_t m_disk, int64_t v_disk, float* m_stage, float* v_stage, int64_t n, const AdamHyper& h,
                        float gscale, bool decay);

}  // namespace stow
