#include "cpu_probe_disk.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

namespace {

constexpr int64_t kBlock = 4 << 20;
constexpr int64_t kFileBytes = 256 << 20;
constexpr int kThreads = 4;
constexpr int64_t kAlign = 4096;  // O_DIRECT's buffer, offset and size alignment on every common file system

double now_seconds() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

[[noreturn]] void fail(const std::string& what, const std::string& path) {
  throw std::runtime_error("disk probe: cannot " + what + " " + path + ": " + std::strerror(errno));
}

// The probe's file, closed and removed however the probe ends.
struct ProbeFile {
  std::string path;
  int fd = -1;
  bool direct = false;
  explicit ProbeFile(const std::string& dir) : path(dir + "/.stow-disk-probe-" + std::to_string(getpid())) {
    fd = open(path.c_str(), O_CREAT | O_TRUNC | O_RDWR | O_DIRECT, 0600);
    direct = fd >= 0;
    if (fd < 0 && errno == EINVAL) fd = open(path.c_str(), O_CREAT | O_TRUNC | O_RDWR, 0600);  // no O_DIRECT here (tmpfs)
    if (fd < 0) fail("create a file in", dir);
  }
  ~ProbeFile() {
    close(fd);
    unlink(path.c_str());
  }
};

using Buffer = std::unique_ptr<uint8_t, decltype(&std::free)>;

// Every thread moves its blocks (block b goes to thread b % kThreads) with pwrite or pread; returns the
// first error's errno (0: none).
int move_blocks(int fd, std::vector<Buffer>& buffers, bool write) {
  std::vector<int> errors(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++)
    threads.emplace_back([&, t] {
      for (int64_t b = t; b * kBlock < kFileBytes; b += kThreads) {
        int64_t done = 0;
        while (done < kBlock) {
          uint8_t* at = buffers[size_t(t)].get() + done;
          const ssize_t n = write ? pwrite(fd, at, size_t(kBlock - done), b * kBlock + done)
                                  : pread(fd, at, size_t(kBlock - done), b * kBlock + done);
          if (n <= 0) {
            errors[size_t(t)] = n == 0 ? EIO : errno;
            return;
          }
          done += n;
        }
      }
    });
  for (std::thread& t : threads) t.join();
  for (int e : errors)
    if (e != 0) return e;
  return 0;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

std::string disk_rates(const std::string& dir, int repeats) {
  ProbeFile file(dir);
  std::vector<Buffer> buffers;
  for (int t = 0; t < kThreads; t++) {
    buffers.emplace_back(static_cast<uint8_t*>(std::aligned_alloc(kAlign, kBlock)), &std::free);
    // Not zeros: a file system or a virtual disk may store those without writing them.
    for (int64_t i = 0; i < kBlock; i++) buffers.back().get()[i] = uint8_t((i * 2654435761u + t) >> 13);
  }
  std::vector<double> writes, reads;
  for (int r = 0; r < std::clamp(repeats, 1, 3); r++) {
    double t0 = now_seconds();
    if ((errno = move_blocks(file.fd, buffers, true)) != 0 || fsync(file.fd) != 0) fail("write", file.path);
    writes.push_back(double(kFileBytes) / (now_seconds() - t0));
    if (!file.direct) posix_fadvise(file.fd, 0, 0, POSIX_FADV_DONTNEED);
    t0 = now_seconds();
    if ((errno = move_blocks(file.fd, buffers, false)) != 0) fail("read", file.path);
    reads.push_back(double(kFileBytes) / (now_seconds() - t0));
  }
  char rates[128];
  std::snprintf(rates, sizeof rates, ",\"direct\":%s,\"write_bytes\":%.6g,\"read_bytes\":%.6g}", file.direct ? "true" : "false",
                median(writes), median(reads));
  return "{\"path\":" + json_string(dir) + rates;
}
