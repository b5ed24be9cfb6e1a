// Kernels of the CPU backend. Every IR op that does arithmetic has one function here, declared by the
// one list every backend expands (core/kernel_list.h, with the contracts and conventions); the
// generated step code calls them with pointers into the device arena. kernels*.cpp define them:
// OpenBLAS for products, OpenMP loops whose reductions run in a fixed order, the collectives and
// vocabulary-parallel kernels in kernels_tp.cpp.
#pragma once
#include <cstdint>
#include "core/ctx.h"
#include "core/kernel_types.h"

namespace stow {

// Every kernel of core/kernel_list.h, as the CPU runs it: products on OpenBLAS (the precision is fp32,
// so no kernel takes one), norms written to out[0] in host-readable memory (so none returns one).
#define STOW_KERNEL(name, ret, params) ret name params;
#define STOW_GEMM_KERNEL(name, params) void name params;
#define STOW_NORM_KERNEL(name, params) void name params;
#include "core/kernel_list.h"

// Plain copy of n floats: a helper of the CPU runtime (no plan node calls it).
void copy(Ctx& c, float* out, const float* in, int64_t n);

}  // namespace stow
