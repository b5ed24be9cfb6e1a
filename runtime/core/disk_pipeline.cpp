#include "disk_pipeline.h"

#include <algorithm>
#include <exception>
#include <memory>

#include "ctx.h"

namespace stow {

DiskPipeline::DiskPipeline(Worker& host, int io_threads) : host_(host), read_pool_(io_threads), write_pool_(io_threads) {}

// Errors are not thrown from here (a failed job fails the waits after it at once).
DiskPipeline::~DiskPipeline() {
  try {
    host_.drain();
    drain();
  } catch (const std::exception&) {
  }
}

void DiskPipeline::submit(DiskTier& disk, const DiskStages& stages, const DiskUpdate& update, const Wrap& wrap) {
  if (stages.slots < 1 || stages.piece <= 0 || stages.piece % (DiskTier::kBlock / 4) != 0)
    throw Error("internal: the disk pipeline's " + std::to_string(stages.slots) + " slots of " + std::to_string(stages.piece) +
                " elements are not whole blocks");
  slot_written_.resize(size_t(std::max<int64_t>(int64_t(slot_written_.size()), stages.slots)), 0);
  // The pieces' jobs share the update's functions.
  const auto u = std::make_shared<const DiskUpdate>(update);
  for (int64_t first = 0; first < u->n; first += stages.piece) {
    const int64_t count = std::min(stages.piece, u->n - first);
    const int slot = int(pieces_++ % stages.slots);
    const int64_t at = int64_t(slot) * stages.piece;
    const int64_t bytes = (4 * count + DiskTier::kBlock - 1) / DiskTier::kBlock * DiskTier::kBlock;
    float* m = stages.m + at;
    float* v = stages.v + at;
    std::vector<DiskRange> reads = {{u->m_disk + 4 * first, m, bytes}, {u->v_disk + 4 * first, v, bytes}};
    std::vector<DiskRange> writes = reads;
    const float* g = u->g + first;
    if (u->g_disk >= 0) {
      g = stages.g + at;
      reads.push_back({u->g_disk + 4 * first, stages.g + at, bytes});
    }
    float* p = u->p + first;
    const bool param_on_disk = u->p_disk >= 0;
    if (param_on_disk) {
      // The blocks holding this piece of the parameter; its elements start inside the first.
      float* blocks = stages.p + int64_t(slot) * (stages.piece + DiskTier::kBlock / 4);
      const int64_t start = u->p_disk + 4 * first;
      p = blocks + (start - DiskTier::first_block(start)) / 4;
      reads.push_back({DiskTier::first_block(start), blocks, DiskTier::span(start, 4 * count)});
      writes.push_back(reads.back());
    }
    // Writer tickets complete in order, so waiting for the later of the two covers both.
    const int64_t free_after = std::max(slot_written_[size_t(slot)], param_on_disk ? param_written_ : 0);
    const bool gradient_on_disk = u->g_disk >= 0;
    const int64_t read = reader_.submit([this, &disk, u, reads, free_after, gradient_on_disk] {
      writer_.wait(free_after);
      if (gradient_on_disk) u->gradient_in();
      disk.read(&read_pool_, reads);
    });
    const int64_t updated = host_.submit(wrap([this, u, read, p, g, m, v, count, gradient_on_disk] {
      reader_.wait(read);
      if (!gradient_on_disk) u->gradient_in();
      u->update(p, g, m, v, count);
    }));
    const int64_t written = writer_.submit([this, &disk, writes, updated] {
      host_.wait(updated);
      disk.write(&write_pool_, writes);
    });
    slot_written_[size_t(slot)] = written;
    if (param_on_disk) param_written_ = written;
  }
}

}  // namespace stow
