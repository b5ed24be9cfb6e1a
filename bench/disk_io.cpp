// The disk-io section's measurement (bench/disk_io.ts): the disk tier's own I/O (DiskTier over a pool of
// TransferEngine::kDiskRequests threads, requests of DiskTier::kRequest bytes, O_DIRECT) against one
// thread driving io_uring at the same queue depth and request size, on a scratch file in DIR. Each round
// times, for each way: writing a region, reading it back, and reading a second region
// while writing the first (the disk pipeline's reader and writer at once). Built with
// -DSTOW_BENCH_URING -luring where liburing is installed; without it, io_uring is not measured.
//
// Usage: disk_io DIR MIB ROUNDS. Prints one JSON line: the median bytes/s of each way and phase.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "core/disk_tier.h"
#include "core/host_threads.h"
#include "core/transfer_engine.h"

#ifdef STOW_BENCH_URING
#include <liburing.h>
#endif

namespace {

constexpr int kDepth = stow::TransferEngine::kDiskRequests;
constexpr int64_t kRequest = stow::DiskTier::kRequest;

double seconds(const std::function<void()>& f) {
  const auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// One way of moving [offset, offset + bytes) of a file to or from a buffer. Both use O_DIRECT, whose
// writes have reached the device when they complete; neither syncs, as the runtime does not.
using Way = std::function<void(int64_t offset, void* buffer, int64_t bytes, bool write)>;

#ifdef STOW_BENCH_URING
// kDepth requests of kRequest bytes in flight on one thread; a ring per call, so a reader and a writer
// may run at once.
void uring_move(int fd, int64_t offset, void* buffer, int64_t bytes, bool write) {
  io_uring ring;
  if (int e = io_uring_queue_init(kDepth, &ring, 0)) {
    std::fprintf(stderr, "io_uring_queue_init: %s\n", std::strerror(-e));
    std::exit(1);
  }
  int64_t next = 0;
  int in_flight = 0;
  while (next < bytes || in_flight > 0) {
    while (next < bytes && in_flight < kDepth) {
      io_uring_sqe* sqe = io_uring_get_sqe(&ring);
      const unsigned size = unsigned(std::min(kRequest, bytes - next));
      char* at = static_cast<char*>(buffer) + next;
      if (write)
        io_uring_prep_write(sqe, fd, at, size, uint64_t(offset + next));
      else
        io_uring_prep_read(sqe, fd, at, size, uint64_t(offset + next));
      next += size;
      in_flight++;
    }
    io_uring_submit(&ring);
    io_uring_cqe* cqe;
    if (io_uring_wait_cqe(&ring, &cqe) != 0 || cqe->res <= 0) {
      std::fprintf(stderr, "io_uring: a request failed\n");
      std::exit(1);
    }
    io_uring_cqe_seen(&ring, cqe);
    in_flight--;
  }
  io_uring_queue_exit(&ring);
}
#endif

struct Rates {
  double write, read, mixed;
};

// `rounds` rounds of write, read, and read-while-writing over two regions of `bytes`.
Rates measure(const Way& way, int64_t bytes, int rounds, char* a, char* b) {
  std::vector<double> write, read, mixed;
  way(bytes, b, bytes, true);  // the second region, which the mixed phase reads
  for (int r = 0; r < rounds; r++) {
    write.push_back(double(bytes) / seconds([&] { way(0, a, bytes, true); }));
    read.push_back(double(bytes) / seconds([&] { way(0, a, bytes, false); }));
    mixed.push_back(2.0 * double(bytes) / seconds([&] {
                      std::thread reader([&] { way(bytes, b, bytes, false); });
                      way(0, a, bytes, true);
                      reader.join();
                    }));
  }
  return {median(write), median(read), median(mixed)};
}

std::string json(const Rates& r) {
  char line[160];
  std::snprintf(line, sizeof line, "{\"write_bytes_per_s\":%.6g,\"read_bytes_per_s\":%.6g,\"mixed_bytes_per_s\":%.6g}", r.write,
                r.read, r.mixed);
  return line;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: disk_io DIR MIB ROUNDS\n");
    return 2;
  }
  const std::string dir = argv[1];
  const int64_t bytes = std::atoll(argv[2]) << 20;
  const int rounds = std::atoi(argv[3]);
  char* a = static_cast<char*>(std::aligned_alloc(stow::DiskTier::kBlock, size_t(bytes)));
  char* b = static_cast<char*>(std::aligned_alloc(stow::DiskTier::kBlock, size_t(bytes)));
  std::memset(a, 1, size_t(bytes));
  std::memset(b, 2, size_t(bytes));

  // The runtime's way: a reader's and a writer's pool, as the disk pipeline has.
  stow::DiskTier tier(dir, 2 * bytes);
  if (!tier.direct()) {
    std::fprintf(stderr, "%s: no O_DIRECT on this file system\n", dir.c_str());
    return 1;
  }
  stow::HostThreads reads(kDepth), writes(kDepth);
  const Way threads = [&](int64_t offset, void* buffer, int64_t n, bool write) {
    if (write)
      tier.write(&writes, offset, buffer, n);
    else
      tier.read(&reads, offset, buffer, n);
  };
  const Rates by_threads = measure(threads, bytes, rounds, a, b);

  std::string uring = "null";
#ifdef STOW_BENCH_URING
  std::string path = dir + "/.stow-disk-io-XXXXXX";
  const int made = mkstemp(path.data());
  const int fd = open(path.c_str(), O_RDWR | O_DIRECT);
  unlink(path.c_str());
  if (made < 0 || fd < 0 || ftruncate(fd, 2 * bytes) != 0) {
    std::fprintf(stderr, "%s: cannot make the io_uring file\n", dir.c_str());
    return 1;
  }
  const Way ring = [&](int64_t offset, void* buffer, int64_t n, bool write) { uring_move(fd, offset, buffer, n, write); };
  uring = json(measure(ring, bytes, rounds, a, b));
  close(fd);
  close(made);
#endif
  std::printf("{\"bytes\":%lld,\"rounds\":%d,\"depth\":%d,\"request_bytes\":%lld,\"threads\":%s,\"io_uring\":%s}\n", (long long)bytes,
              rounds, kDepth, (long long)kRequest, json(by_threads).c_str(), uring.c_str());
  std::free(a);
  std::free(b);
}
