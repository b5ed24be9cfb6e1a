#include "host_pool.h"

#include <cstdlib>
#include <string>

#include "ctx.h"

namespace stow {

void* HostPool::allocate(int64_t bytes, const char* what) {
  if (bytes < 0) throw Error(std::string("internal: negative host allocation for ") + what);
  if (limit_ > 0 && current_ + bytes > limit_)
    throw Error("the host memory budget of " + std::to_string(limit_) + " bytes is too small: " + what + " needs " +
                std::to_string(bytes) + " more bytes with " + std::to_string(current_) + " already in use");
  // aligned_alloc wants a size that is a multiple of the alignment (and non-zero).
  const size_t rounded = size_t((bytes + kAlign - 1) / kAlign * kAlign);
  void* p = std::aligned_alloc(size_t(kAlign), rounded == 0 ? size_t(kAlign) : rounded);
  if (p == nullptr)
    throw Error("out of host memory: cannot allocate " + std::to_string(bytes) + " bytes for " + what);
  current_ += bytes;
  if (current_ > peak_) peak_ = current_;
  if (current_ > marked_peak_) marked_peak_ = current_;
  return p;
}

void HostPool::release(void* p, int64_t bytes) {
  std::free(p);
  current_ -= bytes;
}

}  // namespace stow
