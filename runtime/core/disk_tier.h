// The disk tier: model data (AdamW moments, then parameters, of offloaded chunks) kept on disk when host
// memory cannot hold it, in one scratch file in --disk-path. The file is unlinked as soon as it is open, so it is never a
// checkpoint and never outlives the process, whatever ends it (checkpoints are written as before, the
// moments read back from here). It starts as zeros, as fresh moments are. Reads and writes are whole
// 4096-byte blocks: with O_DIRECT where the file system takes it (the page cache would otherwise hold a
// second copy of what the tier exists to keep out of memory), buffered where it does not or where a
// buffer is not aligned. A call splits its ranges into requests of at most kRequest bytes and spreads
// them over a pool's threads, so several requests are in flight at once, as an NVMe drive needs to reach
// its bandwidth (the `cpu` probe measures the disk alike: 4 MiB blocks from 4 threads).
#pragma once
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "host_threads.h"

namespace stow {

// A range of the disk tier's file (offset and bytes whole blocks) and the host buffer it moves to or from.
struct DiskRange {
  int64_t offset;
  void* buffer;
  int64_t bytes;
};

class DiskTier {
 public:
  static constexpr int64_t kBlock = 4096;
  // The largest single request: small enough that one range makes several requests for the pool's threads.
  static constexpr int64_t kRequest = 8 << 20;
  // A scratch file of `bytes` (whole blocks) in folder `dir`; throws stow::Error naming the folder.
  DiskTier(const std::string& dir, int64_t bytes);
  ~DiskTier();
  DiskTier(const DiskTier&) = delete;
  DiskTier& operator=(const DiskTier&) = delete;

  // Moves [offset, offset + bytes) of the file to or from `buffer` (offset and bytes whole blocks),
  // its requests spread over `pool`'s threads (one caller at a time: each worker that moves disk data
  // has its own), or one after another on the calling thread without a pool (saving, loading); throws
  // stow::Error naming the file's folder on failure.
  void read(HostThreads* pool, int64_t offset, void* buffer, int64_t bytes) { read(pool, {{offset, buffer, bytes}}); }
  void write(HostThreads* pool, int64_t offset, const void* buffer, int64_t bytes) {
    write(pool, {{offset, const_cast<void*>(buffer), bytes}});
  }
  // Several ranges at once, their requests in flight together (the disk pipeline's pieces).
  void read(HostThreads* pool, const std::vector<DiskRange>& ranges);
  void write(HostThreads* pool, const std::vector<DiskRange>& ranges);
  bool direct() const { return direct_fd_ >= 0; }

  // The whole blocks holding the byte range [offset, offset + bytes): where they start, and their size.
  static int64_t first_block(int64_t offset) { return offset / kBlock * kBlock; }
  static int64_t span(int64_t offset, int64_t bytes) { return (offset + bytes + kBlock - 1) / kBlock * kBlock - first_block(offset); }

  // The gradient norm's partial sums of squares of the gradient last written at `offset` (one per
  // thread share, or one), kept as the gradient goes out through its staging buffer, so that the norm
  // never reads it back; squares() throws naming the offset when none was kept.
  void keep_squares(int64_t offset, std::vector<double> sums);
  std::vector<double> squares(int64_t offset) const;

  // Bytes moved since the last reset (the session's per-step metrics); the host worker and the link's
  // worker move them at once.
  std::atomic<int64_t> read_bytes{0}, write_bytes{0};

 private:
  void move(HostThreads* pool, const std::vector<DiskRange>& ranges, bool write);
  void check(const DiskRange& range) const;
  std::string dir_;
  int64_t bytes_;
  mutable std::mutex squares_mu_;  // the link's worker keeps, the compute thread reads
  std::unordered_map<int64_t, std::vector<double>> squares_;
  int direct_fd_ = -1;    // O_DIRECT, when the file system takes it
  int buffered_fd_ = -1;  // the same file through the page cache
};

}  // namespace stow
