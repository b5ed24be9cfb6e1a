// Host AdamW of model data held in the disk tier, pipelined: each parameter's update goes through a ring
// of staging slots in pieces, so that while the host worker updates piece k, an I/O thread reads the
// next pieces (their moments, and their gradient and parameter where those are on disk) and another
// writes piece k-1 back, across parameters as within one. A slot is read into only once its previous
// write has finished; a piece's update waits for its read and its gradient, its write for its update.
// Disk time then overlaps the update, and reads overlap writes, instead of the three running in turn.
//
// Each I/O thread keeps several requests in flight through its own small pool (DiskTier's requests).
// A parameter on disk shares its first and last blocks with its neighbours (and a piece's blocks with
// the next piece's), so pieces holding a parameter on disk are read only once the previous such piece
// is written back: parameters on disk are updated in turn, moments and gradients overlapped.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "disk_tier.h"
#include "host_threads.h"
#include "worker.h"

namespace stow {

// The staging ring in host memory (planned: the memory plan's staging buffers): `slots` slots, each
// `piece` elements (whole blocks) of each moment, of a gradient and, as a parameter on disk starts
// anywhere in a block, piece + one block's elements of the parameter's blocks.
struct DiskStages {
  float* m;
  float* v;
  float* g;
  float* p;
  int64_t piece;
  int slots;
};

// One parameter's update: n elements; the parameter at `p`, or in the disk tier from byte p_disk when
// p_disk >= 0; the gradient alike; the moments at byte offsets m_disk and v_disk (whole blocks).
struct DiskUpdate {
  int64_t n;
  float* p;
  int64_t p_disk;
  const float* g;
  int64_t g_disk;
  int64_t m_disk, v_disk;
  // Blocks until the gradient's copy from the device has landed (and is written out, when on disk).
  std::function<void()> gradient_in;
  // Updates `count` elements in place, on the host worker (AdamW over the host pool).
  std::function<void(float* p, const float* g, float* m, float* v, int64_t count)> update;
};

class DiskPipeline {
 public:
  // `host` runs the updates; `io_threads` requests in flight for each of reading and writing.
  DiskPipeline(Worker& host, int io_threads);
  // Lets every queued piece finish first: the host worker's jobs wait on the reader's.
  ~DiskPipeline();
  DiskPipeline(const DiskPipeline&) = delete;
  DiskPipeline& operator=(const DiskPipeline&) = delete;

  // Queues the update's pieces; returns at once. `wrap` wraps each piece's job on the host worker
  // (the measured trace's spans).
  using Wrap = std::function<std::function<void()>(std::function<void()>)>;
  void submit(DiskTier& disk, const DiskStages& stages, const DiskUpdate& update, const Wrap& wrap);
  // Blocks until every queued piece is written back; returns the seconds blocked.
  double drain() { return reader_.drain() + writer_.drain(); }

 private:
  Worker& host_;
  HostThreads read_pool_, write_pool_;
  Worker writer_;  // before reader_: the reader's jobs wait on the writer's, so it is destroyed last
  Worker reader_;
  std::vector<int64_t> slot_written_;  // the writer's ticket of each slot's last write-back (0: none)
  int64_t param_written_ = 0;          // the writer's ticket of the last piece holding a parameter on disk
  int64_t pieces_ = 0;
};

}  // namespace stow
