// The training data of a task model (a model that declares named inputs): a step file, which stow
// writes from the model's data loader, holding every step's global batch of every input. Little-endian:
//   int32 magic 20261203, int32 version 1, int32 inputs, int32 0, int64 steps, int64 rows (the global batch);
//   per input: char name[64] (NUL-padded), int32 dtype (0 int32, 1 float32), int32 0, int64 row elements;
//   then, step after step, each input in header order: rows x row elements, 4 bytes each.
// Loaded whole into tracked host memory; a step's rows are uploaded from there.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "host_pool.h"
#include "plan.h"

namespace stow {

class StepData {
 public:
  // Validates the file against the program's inputs (matched by name: dtype and elements per example)
  // and the global batch `rows`. Throws stow::Error naming the file and what does not match.
  StepData(const std::string& path, const ProgramDesc& program, int64_t rows, HostPool& pool);

  // Moves to the next step; input(i) then points at rows [first_row, ...) of the program's input i in it.
  void next_step();
  const uint8_t* input(int i, int64_t first_row) const;

  int64_t steps() const { return steps_; }
  // The index of the next step (the data position a checkpoint records).
  int64_t position() const { return position_; }
  void set_position(int64_t p) { position_ = p; }

 private:
  std::string path_;
  int64_t steps_ = 0, step_bytes_ = 0;
  std::vector<int64_t> at_;         // per program input: its byte offset within a step
  std::vector<int64_t> row_bytes_;  // per program input
  HostBuffer<uint8_t> bytes_;
  int64_t position_ = 0;
  int64_t current_ = -1;  // the step input() reads
};

}  // namespace stow
