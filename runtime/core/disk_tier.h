// The disk tier: model data (AdamW moments, then parameters, of offloaded chunks) kept on disk when host
// memory cannot hold it, in one scratch file in --disk-path. The file is unlinked as soon as it is open, so it is never a
// checkpoint and never outlives the process, whatever ends it (checkpoints are written as before, the
// moments read back from here). It starts as zeros, as fresh moments are. Reads and writes are whole
// 4096-byte blocks: with O_DIRECT where the file system takes it (the page cache would otherwise hold a
// second copy of what the tier exists to keep out of memory), buffered where it does not or where a
// buffer is not aligned. A call splits its range over the host pool's threads, in shares of at least
// HostThreads::kMinShare blocks (64 MiB), so a large moment has several requests in flight, as an NVMe
// drive needs to reach its bandwidth; smaller ones go as one request (queue depth 1: to be improved).
#pragma once
#include <atomic>
#include <cstdint>
#include <string>

#include "host_threads.h"

namespace stow {

class DiskTier {
 public:
  static constexpr int64_t kBlock = 4096;
  // A scratch file of `bytes` (whole blocks) in folder `dir`; throws stow::Error naming the folder.
  DiskTier(const std::string& dir, int64_t bytes);
  ~DiskTier();
  DiskTier(const DiskTier&) = delete;
  DiskTier& operator=(const DiskTier&) = delete;

  // Moves [offset, offset + bytes) of the file to or from `buffer` (offset and bytes whole blocks),
  // on `pool`'s threads, or as one request on the calling thread without a pool (the link's worker,
  // which must not share the host worker's pool); throws stow::Error naming the file's folder on failure.
  void read(HostThreads* pool, int64_t offset, void* buffer, int64_t bytes);
  void write(HostThreads* pool, int64_t offset, const void* buffer, int64_t bytes);
  bool direct() const { return direct_fd_ >= 0; }

  // The whole blocks holding the byte range [offset, offset + bytes): where they start, and their size.
  static int64_t first_block(int64_t offset) { return offset / kBlock * kBlock; }
  static int64_t span(int64_t offset, int64_t bytes) { return (offset + bytes + kBlock - 1) / kBlock * kBlock - first_block(offset); }

  // Bytes moved since the last reset (the session's per-step metrics); the host worker and the link's
  // worker move them at once.
  std::atomic<int64_t> read_bytes{0}, write_bytes{0};

 private:
  void move(HostThreads* pool, int64_t offset, void* buffer, int64_t bytes, bool write);
  std::string dir_;
  int64_t bytes_;
  int direct_fd_ = -1;    // O_DIRECT, when the file system takes it
  int buffered_fd_ = -1;  // the same file through the page cache
};

}  // namespace stow
