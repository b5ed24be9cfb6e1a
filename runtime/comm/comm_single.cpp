// The communicator of a single-process run: one rank, every collective a copy at most. Plans built
// with --tp 1 link this one and need no MPI.
#include <cstdlib>
#include <cstring>

#include "comm.h"

namespace stow {

namespace {

class SingleComm final : public Comm {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void all_reduce(float*, int64_t, Reduce) override {}
  void all_gather(const void* send, void* recv, int64_t bytes) override { std::memmove(recv, send, size_t(bytes)); }
  void reduce_scatter(const float* send, float* recv, int64_t n) override { std::memmove(recv, send, size_t(n) * 4); }
  void broadcast(void*, int64_t, int) override {}
  void gather(const void* send, void* recv, int64_t bytes, int) override { std::memmove(recv, send, size_t(bytes)); }
  std::unique_ptr<Comm> split(int, int) override { return std::make_unique<SingleComm>(); }
  [[noreturn]] void abort(int code) override { std::exit(code); }
};

}  // namespace

Comm& process_comm() {
  static SingleComm comm;
  return comm;
}

}  // namespace stow
