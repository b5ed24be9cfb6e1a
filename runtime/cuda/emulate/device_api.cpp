// The CUDA runtime API of the emulated target: device memory (ordinary memory, filled with NaN bytes
// when allocated so that a read of memory nobody wrote shows), pinned host memory, streams and events,
// errors as CUDA reports them, and kernel launches.
//
// A stream is an in-order queue drained by its own OS thread, so streams run concurrently with each
// other and with the host, and a missing event shows up as a wrong answer as it would on a GPU. The
// legacy default stream (0) synchronises with the blocking streams and not with non-blocking ones.
// Every operation is also checked, when it is queued, against the other streams' uses of the same bytes
// (race_check.h): that check does not depend on timing.
#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cuda_runtime.h"
#include "kernel_exec.h"
#include "race_check.h"

struct EventState {
  uint64_t records = 0;       // how many times it was recorded
  std::set<uint64_t> pending;  // records not yet reached by their stream
  stow::emu::race::Clock clock;
};

struct CUevent_st {
  std::shared_ptr<EventState> state = std::make_shared<EventState>();
};

struct CUstream_st {
  int id = 0;  // 0: the legacy default stream
  bool blocking = true;
  int agent = 0;
  uint64_t epoch = 0;
  stow::emu::race::Clock clock;
  uint64_t queued = 0, completed = 0;  // operations queued and finished
  std::deque<std::function<void()>> queue;
  bool stopping = false;
  std::thread worker;
};

namespace stow::emu {
namespace {

enum class Memory { Device, Pinned };

struct Allocation {
  size_t bytes;
  Memory kind;
  int index;          // for messages: the n-th allocation of its kind
  bool owned;         // cudaMalloc / cudaMallocHost (freed by us), not cudaHostRegister
};

// Bookkeeping of every API call: allocations, stream queues' counters, clocks. Streams' threads take it
// only to mark progress.
// Never destroyed: stream threads still wait on them while the process exits.
std::mutex& api_lock = *new std::mutex;
std::condition_variable& progress = *new std::condition_variable;  // notified whenever an operation finishes
std::map<uintptr_t, Allocation>& allocations = *new std::map<uintptr_t, Allocation>;
std::vector<CUstream_st*>& streams = *new std::vector<CUstream_st*>;  // every live stream, the legacy one first
size_t device_bytes_in_use = 0;
int device_allocations = 0, pinned_allocations = 0;
int agents = 0;
int current_device = 0;

// The first error of a kernel or copy while it ran: sticky, as on the GPU, returned by every later call.
cudaError_t sticky = cudaSuccess;
std::string sticky_text;

thread_local cudaError_t last_error = cudaSuccess;
thread_local cudaError_t detail_code = cudaSuccess;
thread_local std::string detail_text;
thread_local race::Clock host_clock;  // what this host thread has seen finish
thread_local std::string current_node;

int64_t env_size(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  return v == nullptr ? fallback : std::max<int64_t>(0, std::atoll(v));
}

// What the emulated GPU has: STOW_EMULATE_DEVICE_MEMORY bytes (default 16 GiB, taken from host memory
// only as it is touched) and STOW_EMULATE_GPUS devices (default 8, so that --tp ranks each find one).
size_t device_memory() { return size_t(env_size("STOW_EMULATE_DEVICE_MEMORY", int64_t(16) << 30)); }
int device_count() { return int(env_size("STOW_EMULATE_GPUS", 8)); }

cudaError_t fail(cudaError_t code, std::string text) {
  detail_code = code;
  detail_text = std::move(text);
  last_error = code;
  return code;
}

void make_sticky(cudaError_t code, const std::string& text) {
  std::lock_guard<std::mutex> hold(api_lock);
  if (sticky == cudaSuccess) {
    sticky = code;
    sticky_text = text;
  }
}

cudaError_t sticky_error() {
  std::lock_guard<std::mutex> hold(api_lock);
  if (sticky != cudaSuccess) last_error = sticky;
  return sticky;
}

std::string node_text() { return current_node.empty() ? "outside any node" : "node " + current_node; }

// The allocation holding [p, p + bytes), if one does. Caller holds api_lock.
const Allocation* find(const void* p, size_t bytes, uintptr_t* base = nullptr) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  auto it = allocations.upper_bound(a);
  if (it == allocations.begin()) return nullptr;
  --it;
  if (a < it->first || a + bytes > it->first + it->second.bytes) return nullptr;
  if (base) *base = it->first;
  return &it->second;
}

// For race messages: "device allocation 1, bytes [64, 128)".
const std::string& where(uintptr_t address) {
  thread_local std::string text;
  auto it = allocations.upper_bound(address);
  if (it != allocations.begin() && address < std::prev(it)->first + std::prev(it)->second.bytes) {
    --it;
    text = std::string(it->second.kind == Memory::Device ? "device allocation " : "pinned host allocation ") +
           std::to_string(it->second.index) + " at byte " + std::to_string(address - it->first);
  } else {
    text = "host memory at " + std::to_string(address);
  }
  return text;
}

CUstream_st* legacy_stream();

void drain(CUstream_st* s) {
  for (;;) {
    std::function<void()> op;
    {
      std::unique_lock<std::mutex> hold(api_lock);
      progress.wait(hold, [s] { return !s->queue.empty() || s->stopping; });
      if (s->queue.empty()) return;
      op = std::move(s->queue.front());
      s->queue.pop_front();
    }
    op();
    {
      std::lock_guard<std::mutex> hold(api_lock);
      s->completed++;
    }
    progress.notify_all();
  }
}

CUstream_st* new_stream(bool blocking, int id) {
  auto* s = new CUstream_st;
  s->id = id;
  s->blocking = blocking;
  s->agent = agents++;
  streams.push_back(s);
  s->worker = std::thread(drain, s);
  return s;
}

CUstream_st* legacy_stream() {
  static CUstream_st* legacy = [] {
    std::lock_guard<std::mutex> hold(api_lock);
    return new_stream(true, 0);
  }();
  return legacy;
}

// The stream a handle names (null and cudaStreamLegacy: the legacy default stream), or null if it
// names none. Caller must not hold api_lock.
CUstream_st* resolve(cudaStream_t stream) {
  if (stream == nullptr || stream == cudaStreamLegacy) return legacy_stream();
  std::lock_guard<std::mutex> hold(api_lock);
  return std::find(streams.begin(), streams.end(), stream) != streams.end() ? stream : nullptr;
}

std::string stream_name(const CUstream_st* s) {
  return s->id == 0 ? "the legacy default stream" : "stream " + std::to_string(s->id);
}

// Makes `s` wait, on the device, for what `other` has queued so far (the legacy stream's implicit
// synchronisation with blocking streams). Caller holds api_lock.
void follow(CUstream_st* s, CUstream_st* other) {
  if (other == s || other->queued == other->completed) {
    s->clock.join(other->clock);
    return;
  }
  const uint64_t target = other->queued;
  s->clock.join(other->clock);
  s->queued++;
  s->queue.push_back([other, target] {
    std::unique_lock<std::mutex> hold(api_lock);
    progress.wait(hold, [&] { return other->completed >= target; });
  });
}

// Queues `op` on `s`, after checking `uses` for races; `what` describes it for race messages. Returns
// the race, if any (then nothing is queued). `queued` runs under the lock once the op has its place.
cudaError_t enqueue(CUstream_st* s, const std::string& what, const std::vector<race::Use>& uses, std::function<void()> op,
                    const std::function<void(CUstream_st*)>& queued = nullptr) {
  std::string race;
  {
    std::lock_guard<std::mutex> hold(api_lock);
    if (s->id == 0) {
      for (CUstream_st* other : streams)
        if (other->blocking && other != s) follow(s, other);
    } else if (s->blocking) {
      follow(s, streams.front());
    }
    s->clock.join(host_clock);
    s->clock.set(s->agent, ++s->epoch);
    race = race::record({s->agent, s->epoch, std::make_shared<const std::string>(what + " on " + stream_name(s))}, s->clock,
                        uses, where);
    if (race.empty() && op) {
      s->queued++;
      s->queue.push_back(std::move(op));
    }
    if (race.empty() && queued) queued(s);
  }
  progress.notify_all();
  if (!race.empty()) return fail(cudaErrorLaunchFailure, "emulated race check: " + race);
  return cudaSuccess;
}

// The host waits until `s` has finished what it had queued, and has then seen all of it.
void wait_idle(CUstream_st* s) {
  std::unique_lock<std::mutex> hold(api_lock);
  const uint64_t target = s->queued;
  progress.wait(hold, [&] { return s->completed >= target; });
  host_clock.join(s->clock);
}

// Runs op on a stream's thread; an exception becomes the context's sticky error.
std::function<void()> guarded(cudaError_t code, std::string what, std::function<void()> op) {
  return [code, what = std::move(what), op = std::move(op)] {
    {
      std::lock_guard<std::mutex> hold(api_lock);
      if (sticky != cudaSuccess) return;  // the context is broken: later work does not run
    }
    try {
      op();
    } catch (const std::exception& e) {
      make_sticky(code, what + ": " + e.what());
    }
  };
}

cudaError_t check_copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, const char* call) {
  std::lock_guard<std::mutex> hold(api_lock);
  const Allocation* d = find(dst, std::max<size_t>(bytes, 1));
  const Allocation* s = find(src, std::max<size_t>(bytes, 1));
  const bool dst_device = d && d->kind == Memory::Device, src_device = s && s->kind == Memory::Device;
  auto side = [](bool device) { return device ? "device memory" : "host memory"; };
  bool ok = true;
  switch (kind) {
    case cudaMemcpyHostToDevice: ok = dst_device && !src_device; break;
    case cudaMemcpyDeviceToHost: ok = !dst_device && src_device; break;
    case cudaMemcpyDeviceToDevice: ok = dst_device && src_device; break;
    case cudaMemcpyHostToHost: ok = !dst_device && !src_device; break;
    case cudaMemcpyDefault: ok = true; break;
    default: return fail(cudaErrorInvalidMemcpyDirection, std::string(call) + ": no such direction");
  }
  if (!ok)
    return fail(cudaErrorInvalidValue, std::string(call) + " of " + std::to_string(bytes) + " bytes (" + node_text() +
                                           "): the direction says otherwise, but the destination is " + side(dst_device) +
                                           " and the source " + side(src_device) +
                                           " (device memory must lie wholly inside one cudaMalloc)");
  return cudaSuccess;
}

const char* copy_name(cudaMemcpyKind kind) {
  switch (kind) {
    case cudaMemcpyHostToDevice: return "the copy to the device";
    case cudaMemcpyDeviceToHost: return "the copy to the host";
    case cudaMemcpyDeviceToDevice: return "the copy on the device";
    default: return "the copy";
  }
}

}  // namespace

std::string node_accesses(cudaStream_t stream, const char* label, const std::vector<Range>& reads,
                          const std::vector<Range>& writes) {
  current_node = label == nullptr ? "" : label;
  CUstream_st* s = resolve(stream);
  if (s == nullptr) return "node " + current_node + ": unknown stream";
  std::vector<race::Use> uses;
  for (const Range& r : reads) uses.push_back({uintptr_t(r.ptr), uintptr_t(r.ptr) + uintptr_t(r.bytes), false});
  for (const Range& r : writes) uses.push_back({uintptr_t(r.ptr), uintptr_t(r.ptr) + uintptr_t(r.bytes), true});
  if (uses.empty()) return "";
  if (enqueue(s, "node " + current_node, uses, nullptr) != cudaSuccess) return detail_text;
  return "";
}

void launch(const char* kernel, dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream, std::function<void()> body,
            std::vector<std::pair<const void*, int>> pointer_args) {
  if (sticky_error() != cudaSuccess) return;
  const std::string name = std::string("kernel ") + kernel + " (" + node_text() + ")";
  const uint64_t threads = uint64_t(block.x) * block.y * block.z;
  if (block.x == 0 || block.y == 0 || block.z == 0 || block.x > 1024 || block.y > 1024 || block.z > 64 || threads > 1024 ||
      grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535) {
    fail(cudaErrorInvalidConfiguration, "launching " + name + " with grid (" + std::to_string(grid.x) + "," +
                                            std::to_string(grid.y) + "," + std::to_string(grid.z) + ") and block (" +
                                            std::to_string(block.x) + "," + std::to_string(block.y) + "," +
                                            std::to_string(block.z) + "): invalid configuration argument");
    return;
  }
  if (shared_bytes > 0) {
    fail(cudaErrorInvalidValue, "launching " + name + ": dynamic shared memory is not emulated");
    return;
  }
  {
    // A pointer argument the GPU cannot dereference faults when the kernel runs (an illegal address).
    std::lock_guard<std::mutex> hold(api_lock);
    for (const auto& [p, index] : pointer_args)
      if (p != nullptr && find(p, 1) == nullptr) {
        sticky = cudaErrorIllegalAddress;
        sticky_text = name + ": argument " + std::to_string(index + 1) + " points to memory that is neither device memory " +
                      "nor pinned host memory";
        last_error = sticky;
        return;
      }
  }
  CUstream_st* s = resolve(stream);
  if (s == nullptr) {
    fail(cudaErrorInvalidResourceHandle, "launching " + name + ": unknown stream");
    return;
  }
  enqueue(s, "the " + name, {}, guarded(cudaErrorLaunchFailure, name, [kernel, grid, block, body = std::move(body)] {
            run_grid(kernel, grid, block, body);
          }));
}

}  // namespace stow::emu

using namespace stow::emu;

const char* cudaGetErrorName(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorHostMemoryAlreadyRegistered: return "cudaErrorHostMemoryAlreadyRegistered";
    case cudaErrorHostMemoryNotRegistered: return "cudaErrorHostMemoryNotRegistered";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    default: return "cudaErrorUnknown";
  }
}

// CUDA's text for the code, or, for the calling thread's last error and the sticky one, the emulation's
// account of what went wrong.
const char* cudaGetErrorString(cudaError_t error) {
  {
    std::lock_guard<std::mutex> hold(api_lock);
    if (error != cudaSuccess && error == sticky) {
      thread_local std::string copy;
      copy = sticky_text;
      return copy.c_str();
    }
  }
  if (error != cudaSuccess && error == detail_code) return detail_text.c_str();
  switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    default: return cudaGetErrorName(error);
  }
}

cudaError_t cudaGetLastError() {
  if (cudaError_t s = sticky_error(); s != cudaSuccess) return s;
  const cudaError_t e = last_error;
  last_error = cudaSuccess;
  return e;
}

cudaError_t cudaPeekAtLastError() {
  if (cudaError_t s = sticky_error(); s != cudaSuccess) return s;
  return last_error;
}

cudaError_t cudaGetDeviceCount(int* count) {
  if (count == nullptr) return fail(cudaErrorInvalidValue, "cudaGetDeviceCount: null count");
  *count = device_count();
  return *count > 0 ? cudaSuccess : fail(cudaErrorNoDevice, "no CUDA-capable device is detected (STOW_EMULATE_GPUS=0)");
}

cudaError_t cudaSetDevice(int device) {
  if (device < 0 || device >= device_count())
    return fail(cudaErrorInvalidDevice, "cudaSetDevice(" + std::to_string(device) + "): the emulation has " +
                                            std::to_string(device_count()) + " devices");
  current_device = device;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
  *device = current_device;
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free, size_t* total) {
  std::lock_guard<std::mutex> hold(api_lock);
  *total = device_memory();
  *free = *total - std::min(*total, device_bytes_in_use);
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() {
  std::vector<CUstream_st*> all;
  legacy_stream();
  {
    std::lock_guard<std::mutex> hold(api_lock);
    all = streams;
  }
  for (CUstream_st* s : all) wait_idle(s);
  return sticky_error();
}

cudaError_t cudaMalloc(void** ptr, size_t bytes) {
  if (cudaError_t e = sticky_error(); e != cudaSuccess) return e;  // the context is broken
  if (ptr == nullptr) return fail(cudaErrorInvalidValue, "cudaMalloc: null result pointer");
  *ptr = nullptr;
  if (bytes == 0) return cudaSuccess;
  std::lock_guard<std::mutex> hold(api_lock);
  if (device_bytes_in_use + bytes > device_memory())
    return fail(cudaErrorMemoryAllocation, "out of memory: cudaMalloc of " + std::to_string(bytes) + " bytes with " +
                                               std::to_string(device_memory() - device_bytes_in_use) +
                                               " bytes free (STOW_EMULATE_DEVICE_MEMORY)");
  const size_t rounded = (bytes + 255) / 256 * 256;
  void* p = std::aligned_alloc(256, rounded);
  if (p == nullptr) return fail(cudaErrorMemoryAllocation, "out of memory: the host could not back a cudaMalloc");
  // Fresh device memory holds whatever was there: NaN bytes make a read of unwritten memory visible.
  std::memset(p, 0xff, rounded);
  allocations[uintptr_t(p)] = {bytes, Memory::Device, ++device_allocations, true};
  device_bytes_in_use += bytes;
  *ptr = p;
  return cudaSuccess;
}

cudaError_t cudaFree(void* ptr) {
  if (ptr == nullptr) return cudaSuccess;
  cudaDeviceSynchronize();  // cudaFree waits for the device, as CUDA's does
  std::lock_guard<std::mutex> hold(api_lock);
  auto it = allocations.find(uintptr_t(ptr));
  if (it == allocations.end() || it->second.kind != Memory::Device)
    return fail(cudaErrorInvalidDevicePointer, "cudaFree of a pointer cudaMalloc did not return");
  device_bytes_in_use -= it->second.bytes;
  race::forget(it->first, it->first + it->second.bytes);
  allocations.erase(it);
  std::free(ptr);
  return cudaSuccess;
}

cudaError_t cudaHostRegister(void* ptr, size_t bytes, unsigned flags) {
  if (cudaError_t e = sticky_error(); e != cudaSuccess) return e;  // the context is broken
  if (ptr == nullptr || bytes == 0 || flags > 0xf) return fail(cudaErrorInvalidValue, "cudaHostRegister: bad arguments");
  std::lock_guard<std::mutex> hold(api_lock);
  const uintptr_t a = uintptr_t(ptr);
  auto it = allocations.lower_bound(a);
  const bool overlaps_next = it != allocations.end() && it->first < a + bytes;
  const bool overlaps_previous = it != allocations.begin() && std::prev(it)->first + std::prev(it)->second.bytes > a;
  if (overlaps_next || overlaps_previous)
    return fail(cudaErrorHostMemoryAlreadyRegistered, "cudaHostRegister: the range overlaps memory already registered or allocated");
  allocations[a] = {bytes, Memory::Pinned, ++pinned_allocations, false};
  return cudaSuccess;
}

cudaError_t cudaHostUnregister(void* ptr) {
  std::lock_guard<std::mutex> hold(api_lock);
  auto it = allocations.find(uintptr_t(ptr));
  if (it == allocations.end() || it->second.kind != Memory::Pinned || it->second.owned)
    return fail(cudaErrorHostMemoryNotRegistered, "cudaHostUnregister of memory cudaHostRegister did not register");
  race::forget(it->first, it->first + it->second.bytes);
  allocations.erase(it);
  return cudaSuccess;
}

cudaError_t cudaMallocHost(void** ptr, size_t bytes) {
  if (cudaError_t e = sticky_error(); e != cudaSuccess) return e;  // the context is broken
  *ptr = std::aligned_alloc(256, (std::max<size_t>(bytes, 1) + 255) / 256 * 256);
  if (*ptr == nullptr) return fail(cudaErrorMemoryAllocation, "cudaMallocHost: out of host memory");
  std::lock_guard<std::mutex> hold(api_lock);
  allocations[uintptr_t(*ptr)] = {std::max<size_t>(bytes, 1), Memory::Pinned, ++pinned_allocations, true};
  return cudaSuccess;
}

cudaError_t cudaFreeHost(void* ptr) {
  if (ptr == nullptr) return cudaSuccess;
  cudaDeviceSynchronize();
  std::lock_guard<std::mutex> hold(api_lock);
  auto it = allocations.find(uintptr_t(ptr));
  if (it == allocations.end() || !it->second.owned || it->second.kind != Memory::Pinned)
    return fail(cudaErrorInvalidValue, "cudaFreeHost of a pointer cudaMallocHost did not return");
  race::forget(it->first, it->first + it->second.bytes);
  allocations.erase(it);
  std::free(ptr);
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t stream) {
  if (cudaError_t e = sticky_error(); e != cudaSuccess) return e;
  {
    std::lock_guard<std::mutex> hold(api_lock);
    const Allocation* a = find(ptr, std::max<size_t>(bytes, 1));
    if (a == nullptr || a->kind != Memory::Device)
      return fail(cudaErrorInvalidValue, "cudaMemset of " + std::to_string(bytes) + " bytes outside device memory");
  }
  CUstream_st* s = resolve(stream);
  if (s == nullptr) return fail(cudaErrorInvalidResourceHandle, "cudaMemsetAsync: unknown stream");
  return enqueue(s, "the memset (" + node_text() + ")", {{uintptr_t(ptr), uintptr_t(ptr) + bytes, true}},
                 [ptr, value, bytes] { std::memset(ptr, value, bytes); });
}

cudaError_t cudaMemset(void* ptr, int value, size_t bytes) { return cudaMemsetAsync(ptr, value, bytes, nullptr); }

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
  if (cudaError_t e = sticky_error(); e != cudaSuccess) return e;
  if (bytes == 0) return cudaSuccess;
  if (cudaError_t e = check_copy(dst, src, bytes, kind, "cudaMemcpyAsync"); e != cudaSuccess) return e;
  CUstream_st* s = resolve(stream);
  if (s == nullptr) return fail(cudaErrorInvalidResourceHandle, "cudaMemcpyAsync: unknown stream");
  const std::vector<race::Use> uses = {{uintptr_t(src), uintptr_t(src) + bytes, false}, {uintptr_t(dst), uintptr_t(dst) + bytes, true}};
  return enqueue(s, std::string(copy_name(kind)) + " of " + std::to_string(bytes) + " bytes (" + node_text() + ")", uses,
                 [dst, src, bytes] { std::memcpy(dst, src, bytes); });
}

// Synchronous: it follows the legacy stream's work (and so the blocking streams'), and returns when done.
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (cudaError_t e = cudaMemcpyAsync(dst, src, bytes, kind, nullptr); e != cudaSuccess) return e;
  wait_idle(legacy_stream());
  return sticky_error();
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags) {
  if (cudaError_t e = sticky_error(); e != cudaSuccess) return e;  // the context is broken
  if (stream == nullptr || flags > cudaStreamNonBlocking) return fail(cudaErrorInvalidValue, "cudaStreamCreateWithFlags: bad arguments");
  legacy_stream();
  std::lock_guard<std::mutex> hold(api_lock);
  *stream = new_stream(!(flags & cudaStreamNonBlocking), int(streams.size()));
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) { return cudaStreamCreateWithFlags(stream, cudaStreamDefault); }

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  CUstream_st* s = resolve(stream);
  if (s == nullptr || s->id == 0) return fail(cudaErrorInvalidResourceHandle, "cudaStreamDestroy: unknown stream");
  wait_idle(s);  // CUDA lets queued work finish before the stream goes
  {
    std::lock_guard<std::mutex> hold(api_lock);
    s->stopping = true;
    streams.erase(std::find(streams.begin(), streams.end(), s));
  }
  progress.notify_all();
  s->worker.join();
  delete s;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  CUstream_st* s = resolve(stream);
  if (s == nullptr) return fail(cudaErrorInvalidResourceHandle, "cudaStreamSynchronize: unknown stream");
  wait_idle(s);
  return sticky_error();
}

cudaError_t cudaStreamQuery(cudaStream_t stream) {
  CUstream_st* s = resolve(stream);
  if (s == nullptr) return fail(cudaErrorInvalidResourceHandle, "cudaStreamQuery: unknown stream");
  std::lock_guard<std::mutex> hold(api_lock);
  return s->completed >= s->queued ? sticky : cudaErrorNotReady;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags) {
  if (cudaError_t e = sticky_error(); e != cudaSuccess) return e;  // the context is broken
  if (event == nullptr || flags > 0x7) return fail(cudaErrorInvalidValue, "cudaEventCreateWithFlags: bad arguments");
  *event = new CUevent_st;
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* event) { return cudaEventCreateWithFlags(event, cudaEventDefault); }

// Work already queued that waits on the event keeps its own reference to the event's state.
cudaError_t cudaEventDestroy(cudaEvent_t event) {
  if (event == nullptr) return fail(cudaErrorInvalidResourceHandle, "cudaEventDestroy: null event");
  delete event;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  if (cudaError_t e = sticky_error(); e != cudaSuccess) return e;  // the context is broken
  if (event == nullptr) return fail(cudaErrorInvalidResourceHandle, "cudaEventRecord: null event");
  CUstream_st* s = resolve(stream);
  if (s == nullptr) return fail(cudaErrorInvalidResourceHandle, "cudaEventRecord: unknown stream");
  std::shared_ptr<EventState> e = event->state;
  uint64_t record;
  {
    std::lock_guard<std::mutex> hold(api_lock);
    record = ++e->records;
    e->pending.insert(record);
  }
  return enqueue(
      s, "an event record", {},
      [e, record] {
        std::lock_guard<std::mutex> hold(api_lock);
        e->pending.erase(record);
      },
      [e](CUstream_st* on) { e->clock = on->clock; });  // everything queued on the stream so far
}

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags) {
  if (cudaError_t e = sticky_error(); e != cudaSuccess) return e;  // the context is broken
  if (event == nullptr || flags != 0) return fail(cudaErrorInvalidValue, "cudaStreamWaitEvent: bad arguments");
  CUstream_st* s = resolve(stream);
  if (s == nullptr) return fail(cudaErrorInvalidResourceHandle, "cudaStreamWaitEvent: unknown stream");
  std::shared_ptr<EventState> e = event->state;
  uint64_t record;
  {
    std::lock_guard<std::mutex> hold(api_lock);
    record = e->records;
    if (record == 0) return cudaSuccess;  // never recorded: nothing to wait for
    s->clock.join(e->clock);
  }
  return enqueue(s, "an event wait", {}, [e, record] {
    std::unique_lock<std::mutex> hold(api_lock);
    progress.wait(hold, [&] { return e->pending.count(record) == 0; });
  });
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  if (event == nullptr) return fail(cudaErrorInvalidResourceHandle, "cudaEventSynchronize: null event");
  std::shared_ptr<EventState> e = event->state;
  {
    std::unique_lock<std::mutex> hold(api_lock);
    const uint64_t record = e->records;
    progress.wait(hold, [&] { return e->pending.count(record) == 0; });
    host_clock.join(e->clock);
  }
  return sticky_error();
}

cudaError_t cudaEventQuery(cudaEvent_t event) {
  if (event == nullptr) return fail(cudaErrorInvalidResourceHandle, "cudaEventQuery: null event");
  std::lock_guard<std::mutex> hold(api_lock);
  return event->state->pending.count(event->state->records) ? cudaErrorNotReady : sticky;
}

namespace stow::emu {

cudaError_t queue_library_work(cudaStream_t stream, const std::string& what, std::function<void()> work) {
  if (cudaError_t e = sticky_error(); e != cudaSuccess) return e;
  CUstream_st* s = resolve(stream);
  if (s == nullptr) return fail(cudaErrorInvalidResourceHandle, what + ": unknown stream");
  const std::string name = what + " (" + node_text() + ")";
  return enqueue(s, name, {}, guarded(cudaErrorLaunchFailure, name, std::move(work)));
}

cudaError_t library_uses(cudaStream_t stream, const std::string& what, const std::vector<Range>& reads, const std::vector<Range>& writes,
                         std::string* race) {
  CUstream_st* s = resolve(stream);
  if (s == nullptr) return fail(cudaErrorInvalidResourceHandle, what + ": unknown stream");
  std::vector<race::Use> uses;
  for (const Range& r : reads) uses.push_back({uintptr_t(r.ptr), uintptr_t(r.ptr) + uintptr_t(r.bytes), false});
  for (const Range& r : writes) uses.push_back({uintptr_t(r.ptr), uintptr_t(r.ptr) + uintptr_t(r.bytes), true});
  if (enqueue(s, what + " (" + node_text() + ")", uses, nullptr) != cudaSuccess) {
    *race = detail_text;
    return cudaSuccess;
  }
  // Not wait_idle: the host must not be seen to have waited, or it would order the stream's later
  // readers after this work as if they had waited for an event.
  {
    std::unique_lock<std::mutex> hold(api_lock);
    const uint64_t target = s->queued;
    progress.wait(hold, [&] { return s->completed >= target; });
  }
  return sticky_error();
}

bool is_device_range(const void* p, size_t bytes) {
  std::lock_guard<std::mutex> hold(api_lock);
  const Allocation* a = find(p, std::max<size_t>(bytes, 1));
  return a != nullptr && a->kind == Memory::Device;
}

const std::string& current_node_label() { return current_node; }

}  // namespace stow::emu
