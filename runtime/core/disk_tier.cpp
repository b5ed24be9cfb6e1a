#include "disk_tier.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "ctx.h"

namespace stow {

DiskTier::DiskTier(const std::string& dir, int64_t bytes) : dir_(dir), bytes_(bytes) {
  if (bytes % kBlock != 0) throw Error("internal: the disk tier's size " + std::to_string(bytes) + " is not whole blocks");
  std::string path = dir + "/.stow-disk-tier-XXXXXX";
  buffered_fd_ = mkstemp(path.data());
  if (buffered_fd_ < 0) throw Error("--disk-path " + dir + ": cannot create the disk tier's file: " + std::strerror(errno));
  direct_fd_ = open(path.c_str(), O_RDWR | O_DIRECT);  // -1 where the file system has no O_DIRECT (tmpfs)
  unlink(path.c_str());
  if (ftruncate(buffered_fd_, bytes) != 0) {
    const std::string why = std::strerror(errno);
    if (direct_fd_ >= 0) close(direct_fd_);
    close(buffered_fd_);
    throw Error("--disk-path " + dir + ": cannot make the disk tier's file " + std::to_string(bytes) + " bytes: " + why);
  }
}

DiskTier::~DiskTier() {
  if (direct_fd_ >= 0) close(direct_fd_);
  if (buffered_fd_ >= 0) close(buffered_fd_);
  direct_fd_ = buffered_fd_ = -1;
}

void DiskTier::read(HostThreads* pool, const std::vector<DiskRange>& ranges) {
  move(pool, ranges, false);
  for (const DiskRange& r : ranges) read_bytes += r.bytes;
}

void DiskTier::write(HostThreads* pool, const std::vector<DiskRange>& ranges) {
  move(pool, ranges, true);
  for (const DiskRange& r : ranges) write_bytes += r.bytes;
}

void DiskTier::keep_squares(int64_t offset, std::vector<double> sums) {
  std::lock_guard<std::mutex> lock(squares_mu_);
  squares_[offset] = std::move(sums);
}

std::vector<double> DiskTier::squares(int64_t offset) const {
  std::lock_guard<std::mutex> lock(squares_mu_);
  const auto found = squares_.find(offset);
  if (found == squares_.end())
    throw Error("internal: no sum of squares was kept for the gradient at byte " + std::to_string(offset) + " of the disk tier");
  return found->second;
}

void DiskTier::check(const DiskRange& r) const {
  if (r.offset % kBlock != 0 || r.bytes % kBlock != 0 || r.offset < 0 || r.offset + r.bytes > bytes_)
    throw Error("internal: disk tier range [" + std::to_string(r.offset) + ", " + std::to_string(r.offset + r.bytes) +
                ") is not whole blocks inside its " + std::to_string(bytes_) + " bytes");
}

void DiskTier::move(HostThreads* pool, const std::vector<DiskRange>& ranges, bool write) {
  // Each range in requests of at most kRequest bytes, through O_DIRECT where its buffer allows.
  struct Request {
    int fd;
    int64_t offset;
    uint8_t* buffer;
    int64_t bytes;
  };
  std::vector<Request> requests;
  for (const DiskRange& r : ranges) {
    check(r);
    const bool aligned = reinterpret_cast<uintptr_t>(r.buffer) % kBlock == 0;
    const int fd = aligned && direct_fd_ >= 0 ? direct_fd_ : buffered_fd_;
    for (int64_t done = 0; done < r.bytes; done += kRequest)
      requests.push_back({fd, r.offset + done, static_cast<uint8_t*>(r.buffer) + done, std::min(kRequest, r.bytes - done)});
  }
  const auto run = [&](int64_t first, int64_t end) {
    for (int64_t k = first; k < end; k++) {
      const Request& q = requests[size_t(k)];
      for (int64_t done = 0; done < q.bytes;) {
        const size_t want = size_t(q.bytes - done);
        const ssize_t n = write ? pwrite(q.fd, q.buffer + done, want, q.offset + done) : pread(q.fd, q.buffer + done, want, q.offset + done);
        if (n <= 0)
          throw Error(std::string("--disk-path ") + dir_ + ": cannot " + (write ? "write" : "read") + " the disk tier: " +
                      (n == 0 ? "unexpected end of file" : std::strerror(errno)));
        done += n;
      }
    }
  };
  // One request a share at least: every pool thread keeps one in flight.
  if (pool != nullptr)
    pool->for_shares(int64_t(requests.size()), run, 1, 1);
  else
    run(0, int64_t(requests.size()));
}

}  // namespace stow
