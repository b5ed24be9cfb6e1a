#include "disk_tier.h"

#include <fcntl.h>
#include <unistd.h>

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

void DiskTier::read(HostThreads* pool, int64_t offset, void* buffer, int64_t bytes) {
  move(pool, offset, buffer, bytes, false);
  read_bytes += bytes;
}

void DiskTier::write(HostThreads* pool, int64_t offset, const void* buffer, int64_t bytes) {
  move(pool, offset, const_cast<void*>(buffer), bytes, true);
  write_bytes += bytes;
}

void DiskTier::move(HostThreads* pool, int64_t offset, void* buffer, int64_t bytes, bool write) {
  if (offset % kBlock != 0 || bytes % kBlock != 0 || offset < 0 || offset + bytes > bytes_)
    throw Error("internal: disk tier range [" + std::to_string(offset) + ", " + std::to_string(offset + bytes) +
                ") is not whole blocks inside its " + std::to_string(bytes_) + " bytes");
  const bool aligned = reinterpret_cast<uintptr_t>(buffer) % kBlock == 0;
  const int fd = aligned && direct_fd_ >= 0 ? direct_fd_ : buffered_fd_;
  uint8_t* base = static_cast<uint8_t*>(buffer);
  // Shares of whole blocks: the pool splits elements, so each element here is a block.
  const auto share = [&](int64_t first, int64_t end) {
    int64_t done = first * kBlock;
    while (done < end * kBlock) {
      const size_t want = size_t(end * kBlock - done);
      const ssize_t n = write ? pwrite(fd, base + done, want, offset + done) : pread(fd, base + done, want, offset + done);
      if (n <= 0)
        throw Error(std::string("--disk-path ") + dir_ + ": cannot " + (write ? "write" : "read") + " the disk tier: " +
                    (n == 0 ? "unexpected end of file" : std::strerror(errno)));
      done += n;
    }
  };
  if (pool != nullptr)
    pool->for_shares(bytes / kBlock, share);
  else
    share(0, bytes / kBlock);
}

}  // namespace stow
