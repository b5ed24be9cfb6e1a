// Tracked host allocations (token data, checkpoint staging). The pool counts the bytes it has handed
// out so a run can report its host high-water mark next to the device arena's.
#pragma once
#include <cstdint>
#include <utility>

namespace stow {

class HostPool {
 public:
  // Page-aligned (the disk tier's O_DIRECT transfers need their buffers so); throws stow::Error naming
  // `what` when memory runs out.
  void* allocate(int64_t bytes, const char* what);
  static constexpr int64_t kAlign = 4096;
  void release(void* p, int64_t bytes);
  int64_t current_bytes() const { return current_; }
  int64_t peak_bytes() const { return peak_; }
  // A high-water mark from now on, apart from the run's (a save's own: what it held at once).
  void mark_peak() { marked_peak_ = current_; }
  int64_t marked_peak_bytes() const { return marked_peak_; }
  // A cap on the bytes held at once (--host-memory); 0 means none. Going over it is an error.
  void set_limit(int64_t bytes) { limit_ = bytes; }

 private:
  int64_t limit_ = 0;
  int64_t current_ = 0;
  int64_t peak_ = 0;
  int64_t marked_peak_ = 0;
};

// An owned array of T from a HostPool, returned to it on destruction. Move-only.
template <typename T>
class HostBuffer {
 public:
  HostBuffer() = default;
  HostBuffer(HostPool& pool, int64_t count, const char* what)
      : pool_(&pool), data_(static_cast<T*>(pool.allocate(count * int64_t(sizeof(T)), what))), count_(count) {}
  HostBuffer(HostBuffer&& o) noexcept { *this = std::move(o); }
  HostBuffer& operator=(HostBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      std::swap(pool_, o.pool_);
      std::swap(data_, o.data_);
      std::swap(count_, o.count_);
    }
    return *this;
  }
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;
  ~HostBuffer() { reset(); }

  void reset() {
    if (data_ != nullptr) pool_->release(data_, count_ * int64_t(sizeof(T)));
    pool_ = nullptr;
    data_ = nullptr;
    count_ = 0;
  }
  T* data() const { return data_; }
  int64_t size() const { return count_; }
  T& operator[](int64_t i) const { return data_[i]; }

 private:
  HostPool* pool_ = nullptr;
  T* data_ = nullptr;
  int64_t count_ = 0;
};

}  // namespace stow
