// The training data: an llm.c token file (256 int32 header: magic 20240520, version 1, token count;
// then the tokens as uint16), loaded whole into tracked host memory, and read in batches in file
// order as llm.c's DataLoader does.
#pragma once
#include <cstdint>
#include <string>

#include "host_pool.h"

namespace stow {

class TokenData {
 public:
  // Validates the file (header, size, every token < vocab, at least batch * seq + 1 tokens) and loads
  // it as int32. Throws stow::Error naming the file and the byte offset at fault.
  TokenData(const std::string& path, int64_t vocab, int64_t batch, int64_t seq, HostPool& pool);

  // Writes rows [first_row, first_row + rows) of the next batch, row-major [rows, seq]: the batch is
  // inputs = tokens[p, p + B*T), targets shifted by one, starting over at token 0 when the batch would
  // run past the end. Advances the position by the whole batch. A data-parallel rank reads its rows of
  // the global batch this way, so every rank advances alike.
  void next_batch(int32_t* inputs, int32_t* targets, int64_t first_row, int64_t rows);

  int64_t count() const { return tokens_.size(); }
  int64_t position() const { return position_; }
  void set_position(int64_t p) { position_ = p; }

 private:
  HostBuffer<int32_t> tokens_;
  int64_t batch_, seq_;
  int64_t position_ = 0;
};

}  // namespace stow
