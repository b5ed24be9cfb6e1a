// How the emulated CUDA target runs a kernel: every CUDA thread of a block is a fiber (Boost.Context),
// all of the block's fibers on one OS thread, switched only where CUDA threads must meet: at
// __syncthreads and at the warp intrinsics. Between those points a thread runs alone, so a kernel
// without them costs one fiber start per thread. Blocks are spread over OS threads (OpenMP), since on
// a GPU they run in any order and at once.
//
// Most kernels never synchronise (an element loop). When the grid's first block, run on fibers, made
// no __syncthreads or warp call, the other blocks run their threads as plain calls, one after another,
// with no fibers at all; a later block that does synchronise is then an error (the kernel synchronises
// in some blocks only), not a wrong answer.
//
// What the GPU leaves undefined is an error here, reported as the kernel's: a shuffle whose mask leaves
// out the calling lane or names a lane that has exited, lanes of one mask meeting at different
// intrinsics, and threads that can never meet (a barrier some threads skip while others wait at a shuffle).
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <boost/context/fiber.hpp>
#include <boost/context/protected_fixedsize_stack.hpp>
#include <cstring>
#include <exception>
#include <list>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cuda_runtime.h"
#include "kernel_exec.h"

namespace stow::emu {
namespace {

namespace bc = boost::context;

constexpr size_t kStackBytes = size_t(256) << 10;

// Fiber stacks, reused from launch to launch; one pool per OS thread, since a block's fibers start and
// end on the thread that runs the block.
class StackPool {
 public:
  ~StackPool() {
    for (bc::stack_context& s : free_) base_.deallocate(s);
  }
  bc::stack_context take() {
    if (free_.empty()) return base_.allocate();
    bc::stack_context s = free_.back();
    free_.pop_back();
    return s;
  }
  void give(const bc::stack_context& s) { free_.push_back(s); }

 private:
  bc::protected_fixedsize_stack base_{kStackBytes};  // a guard page under each stack
  std::vector<bc::stack_context> free_;
};

thread_local StackPool stack_pool;

// Boost.Context's StackAllocator, drawing on the calling OS thread's pool.
struct PooledStack {
  bc::stack_context allocate() { return stack_pool.take(); }
  void deallocate(bc::stack_context& s) noexcept { stack_pool.give(s); }
};

enum class Wait { None, Barrier, Warp };

// One warp intrinsic in progress: the lanes of `mask` deposit their values, and once all have, each
// reads them all. Lanes of one warp may be at exchanges with different masks at once (after a
// divergent branch), so a warp keeps a list of them.
struct Exchange {
  unsigned mask;
  const char* what;
  unsigned arrived = 0;
  unsigned unread = 0;  // lanes yet to read the completed deposits
  uint64_t deposits[32] = {};
};

struct WarpState {
  unsigned lanes = 0;  // the lanes that exist (the block's last warp may be partial)
  unsigned exited = 0;
  std::list<Exchange> exchanges;
};

struct CudaThread {
  ThreadCoords coords{};
  unsigned lane = 0, warp = 0;
  bc::fiber fiber;      // this thread, while suspended
  bc::fiber scheduler;  // the block's scheduler, while this thread runs
  Wait wait = Wait::None;
  uint64_t wait_generation = 0;  // at a barrier
  std::list<Exchange>::iterator exchange;  // at a warp intrinsic
  bool started = false, exited = false;
};

struct Block {
  const char* kernel;
  uint3 index;
  bool direct = false;  // threads run as plain calls: they must not synchronise
  bool synchronised = false;
  std::vector<CudaThread> threads;
  std::vector<WarpState> warps;
  unsigned live = 0;
  unsigned barrier_arrived = 0;
  uint64_t barrier_generation = 0;
  std::string error;
};

thread_local Block* current_block = nullptr;
thread_local CudaThread* current_thread = nullptr;

std::string coords_text(const Block& b, const CudaThread& t) {
  auto v = [](unsigned x, unsigned y, unsigned z) {
    return "(" + std::to_string(x) + "," + std::to_string(y) + "," + std::to_string(z) + ")";
  };
  return "block " + v(b.index.x, b.index.y, b.index.z) + " thread " +
         v(t.coords.thread_idx.x, t.coords.thread_idx.y, t.coords.thread_idx.z);
}

CudaThread& this_thread(const char* what) {
  if (current_thread == nullptr) throw std::logic_error(std::string(what) + " called outside a kernel");
  return *current_thread;
}

[[noreturn]] void fail(const std::string& message);

// A thread at a barrier or warp intrinsic: one that runs as a plain call cannot wait.
CudaThread& synchronising_thread(const char* what) {
  CudaThread& t = this_thread(what);
  current_block->synchronised = true;
  if (current_block->direct)
    fail(std::string("calls ") + what + ", but the grid's first block made no barrier or warp call, so the emulation runs "
                                        "the kernel's threads without fibers; a kernel must synchronise in every block or none");
  return t;
}

// Undefined behaviour of the calling thread: ends the launch with this message.
[[noreturn]] void fail(const std::string& message) {
  const Block& b = *current_block;
  throw KernelFault(std::string("kernel ") + b.kernel + ", " + coords_text(b, *current_thread) + ": " + message);
}

void yield(CudaThread& t) { t.scheduler = std::move(t.scheduler).resume(); }

void release_barrier(Block& b) {
  b.barrier_arrived = 0;
  b.barrier_generation++;
}

std::string hex(unsigned mask) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%08x", mask);
  return text;
}

void on_exit(Block& b, CudaThread& t) {
  t.exited = true;
  b.live--;
  WarpState& w = b.warps[t.warp];
  w.exited |= 1u << t.lane;
  // Exited threads do not hold up a barrier (bar.sync counts the threads that have not exited).
  if (b.barrier_arrived > 0 && b.barrier_arrived == b.live) release_barrier(b);
  for (const Exchange& e : w.exchanges)
    if (e.arrived != e.mask && (e.mask & (1u << t.lane)) && !(e.arrived & (1u << t.lane)))
      fail("exited while lanes " + hex(e.arrived) + " of its warp wait for it at " + e.what + " (mask " + hex(e.mask) + ")");
}

bool runnable(const Block& b, const CudaThread& t) {
  switch (t.wait) {
    case Wait::None: return true;
    case Wait::Barrier: return b.barrier_generation != t.wait_generation;
    case Wait::Warp: return t.exchange->arrived == t.exchange->mask;
  }
  return false;
}

std::string deadlock_text(const Block& b) {
  unsigned at_barrier = 0, at_warp = 0;
  std::string warps;
  for (const CudaThread& t : b.threads) {
    if (t.exited) continue;
    if (t.wait == Wait::Barrier) at_barrier++;
    if (t.wait == Wait::Warp) at_warp++;
  }
  for (size_t i = 0; i < b.warps.size(); i++)
    for (const Exchange& e : b.warps[i].exchanges)
      if (e.arrived != e.mask)
        warps += "; warp " + std::to_string(i) + " has lanes " + hex(e.arrived) + " of " + hex(e.mask) + " at " + e.what;
  return std::string("kernel ") + b.kernel + ", block (" + std::to_string(b.index.x) + "," + std::to_string(b.index.y) + "," +
         std::to_string(b.index.z) + "): its threads can never meet: " + std::to_string(at_barrier) +
         " wait at __syncthreads and " + std::to_string(at_warp) + " at warp intrinsics" + warps;
}

uint3 thread_index(unsigned i, const dim3& block_dim) {
  return {i % block_dim.x, i / block_dim.x % block_dim.y, i / (block_dim.x * block_dim.y)};
}

// The block's threads one after another as plain calls, for a kernel that does not synchronise.
void run_block_direct(Block& b, const dim3& block_dim, const dim3& grid_dim, const std::function<void()>& body) {
  const unsigned n = block_dim.x * block_dim.y * block_dim.z;
  b.direct = true;
  b.warps.resize((n + 31) / 32);
  CudaThread t;
  current_block = &b;
  current_thread = &t;
  try {
    for (unsigned i = 0; i < n; i++) {
      t.coords = {thread_index(i, block_dim), b.index, block_dim, grid_dim};
      t.lane = i % 32;
      t.warp = i / 32;
      body();
    }
  } catch (...) {
    current_block = nullptr;
    current_thread = nullptr;
    throw;
  }
  current_block = nullptr;
  current_thread = nullptr;
}

void run_block(Block& b, const dim3& block_dim, const dim3& grid_dim, const std::function<void()>& body) {
  const unsigned n = block_dim.x * block_dim.y * block_dim.z;
  b.threads.resize(n);
  b.warps.resize((n + 31) / 32);
  for (unsigned i = 0; i < n; i++) {
    CudaThread& t = b.threads[i];
    t.coords = {thread_index(i, block_dim), b.index, block_dim, grid_dim};
    t.lane = i % 32;
    t.warp = i / 32;
    b.warps[t.warp].lanes |= 1u << t.lane;
  }
  b.live = n;
  current_block = &b;
  while (b.live > 0) {
    bool progressed = false;
    for (CudaThread& t : b.threads) {
      if (t.exited || !runnable(b, t)) continue;
      if (!t.started) {
        t.started = true;
        t.fiber = bc::fiber(std::allocator_arg, PooledStack(), [&b, &t, &body](bc::fiber&& scheduler) {
          t.scheduler = std::move(scheduler);
          try {
            body();
            on_exit(b, t);
          } catch (const std::exception& e) {  // boost's forced unwinding is no std::exception: it passes
            b.error = e.what();
            t.exited = true;
          }
          return std::move(t.scheduler);
        });
      }
      current_thread = &t;
      t.fiber = std::move(t.fiber).resume();
      current_thread = nullptr;
      progressed = true;
      if (!b.error.empty()) {
        current_block = nullptr;
        throw KernelFault(b.error);  // the block's suspended fibers unwind as `b` goes
      }
    }
    if (!progressed) {
      current_block = nullptr;
      throw KernelFault(deadlock_text(b));
    }
  }
  current_block = nullptr;
}

int kernel_threads() {
  static const int threads = [] {
    if (const char* v = std::getenv("STOW_EMULATE_THREADS")) return std::max(1, std::atoi(v));
    return std::max(1, int(std::thread::hardware_concurrency()));
  }();
  return threads;
}

}  // namespace

const ThreadCoords& coords() { return this_thread("threadIdx/blockIdx").coords; }

unsigned lane_id() { return this_thread("a warp intrinsic").lane; }

void warp_exchange(unsigned mask, uint64_t bits, uint64_t (&all)[32], const char* what) {
  CudaThread& t = synchronising_thread(what);
  Block& b = *current_block;
  WarpState& w = b.warps[t.warp];
  const unsigned me = 1u << t.lane;
  if (!(mask & me)) fail(std::string(what) + " with mask " + hex(mask) + ", which leaves out the calling lane " + std::to_string(t.lane));
  if (mask & ~w.lanes) fail(std::string(what) + " with mask " + hex(mask) + " names lanes the block does not have");
  if (mask & w.exited) fail(std::string(what) + " with mask " + hex(mask) + " names lanes that have exited (" + hex(mask & w.exited) + ")");
  // Join the open exchange of this mask, or open one. Lanes of one mask meeting at different
  // intrinsics are an error; lanes that wait for each other at exchanges of different masks never meet,
  // which the scheduler reports as threads that can never meet.
  auto e = w.exchanges.begin();
  for (; e != w.exchanges.end(); ++e) {
    if (e->arrived == e->mask || (e->arrived & me)) continue;  // complete, or one this lane is past
    if (e->mask == mask) break;
  }
  if (e == w.exchanges.end()) {
    e = w.exchanges.insert(w.exchanges.end(), Exchange{mask, what});
  } else if (std::strcmp(e->what, what) != 0) {
    fail(std::string(what) + " with mask " + hex(mask) + " while lanes " + hex(e->arrived) + " of its warp are at " + e->what +
         " with the same mask");
  }
  e->deposits[t.lane] = bits;
  e->arrived |= me;
  if (e->arrived == e->mask) {
    e->unread = __builtin_popcount(e->mask);
  } else {
    t.wait = Wait::Warp;
    t.exchange = e;
    yield(t);
    t.wait = Wait::None;
  }
  for (int l = 0; l < 32; l++) all[l] = (e->mask >> l & 1u) ? e->deposits[l] : 0;
  if (--e->unread == 0) w.exchanges.erase(e);
}

void check_source_lane(unsigned mask, int lane, const char* what) {
  if (lane < 0 || lane > 31 || !(mask >> lane & 1u))
    fail(std::string(what) + " reads lane " + std::to_string(lane) + ", outside its mask " + hex(mask));
}

Block first_block(const char* kernel, dim3 grid, dim3 block, const std::function<void()>& body) {
  Block b;
  b.kernel = kernel;
  b.index = {0, 0, 0};
  run_block(b, block, grid, body);
  return b;
}

void run_grid(const char* kernel, dim3 grid, dim3 block, const std::function<void()>& body) {
  const int64_t blocks = int64_t(grid.x) * grid.y * grid.z;
  const bool direct = !first_block(kernel, grid, block, body).synchronised;
  std::atomic<int64_t> next{1};
  std::atomic<bool> failed{false};
  std::string error;
  std::mutex error_lock;
  auto work = [&] {
    for (int64_t i; !failed && (i = next++) < blocks;) {
      Block b;
      b.kernel = kernel;
      b.index = {unsigned(i % grid.x), unsigned(i / grid.x % grid.y), unsigned(i / (int64_t(grid.x) * grid.y))};
      try {
        if (direct)
          run_block_direct(b, block, grid, body);
        else
          run_block(b, block, grid, body);
      } catch (const KernelFault& e) {
        std::lock_guard<std::mutex> hold(error_lock);
        if (!failed.exchange(true)) error = e.what();
      }
    }
  };
  const int threads = int(std::min<int64_t>(kernel_threads(), blocks - 1));
  if (threads <= 1) {
    work();
  } else {
#pragma omp parallel num_threads(threads)
    work();
  }
  if (failed) throw KernelFault(error);
}

}  // namespace stow::emu

using stow::emu::CudaThread;

void __syncthreads() {
  CudaThread& t = stow::emu::synchronising_thread("__syncthreads");
  stow::emu::Block& b = *stow::emu::current_block;
  if (++b.barrier_arrived == b.live) {
    stow::emu::release_barrier(b);
    return;
  }
  t.wait = stow::emu::Wait::Barrier;
  t.wait_generation = b.barrier_generation;
  stow::emu::yield(t);
  t.wait = stow::emu::Wait::None;
}

void __syncwarp(unsigned mask) {
  uint64_t all[32];
  stow::emu::warp_exchange(mask, 0, all, "__syncwarp");
}

void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }

unsigned __activemask() {
  CudaThread& t = stow::emu::synchronising_thread("__activemask");
  const stow::emu::WarpState& w = stow::emu::current_block->warps[t.warp];
  return w.lanes & ~w.exited;
}

unsigned __ballot_sync(unsigned mask, int predicate) {
  uint64_t all[32];
  stow::emu::warp_exchange(mask, predicate != 0, all, "__ballot_sync");
  unsigned ballot = 0;
  for (int l = 0; l < 32; l++) ballot |= unsigned(all[l] != 0) << l;
  return ballot;
}

int __all_sync(unsigned mask, int predicate) { return (__ballot_sync(mask, predicate) & mask) == mask; }
int __any_sync(unsigned mask, int predicate) { return (__ballot_sync(mask, predicate) & mask) != 0; }
