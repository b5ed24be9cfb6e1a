#include "token_file.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <sys/stat.h>

#include "ctx.h"

namespace stow {

namespace {

constexpr int32_t kMagic = 20240520;
constexpr int32_t kVersion = 1;
constexpr int64_t kHeaderBytes = 256 * 4;
constexpr int64_t kChunkTokens = int64_t(1) << 20;  // staging size while widening uint16 to int32

struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};

void read_exact(FILE* f, void* dst, int64_t bytes, const std::string& path, int64_t at) {
  if (std::fread(dst, 1, size_t(bytes), f) != size_t(bytes))
    throw Error(path + ": read failed at byte " + std::to_string(at) +
                (std::ferror(f) ? std::string(": ") + std::strerror(errno) : " (file shrank while read?)"));
}

}  // namespace

TokenData::TokenData(const std::string& path, int64_t vocab, int64_t batch, int64_t seq, HostPool& pool)
    : batch_(batch), seq_(seq) {
  std::unique_ptr<FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  if (!f) throw Error(path + ": cannot open token file: " + std::strerror(errno));
  struct stat st;
  if (fstat(fileno(f.get()), &st) != 0) throw Error(path + ": cannot stat token file: " + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) throw Error(path + ": is a directory, expected an llm.c token file");
  const int64_t size = st.st_size;
  if (size < kHeaderBytes)
    throw Error(path + ": too short for an llm.c token file: " + std::to_string(size) + " bytes, the header alone is " +
                std::to_string(kHeaderBytes) + " bytes");

  int32_t header[256];
  read_exact(f.get(), header, kHeaderBytes, path, 0);
  if (header[0] != kMagic)
    throw Error(path + ": not an llm.c token file: magic at byte offset 0 is " + std::to_string(header[0]) +
                ", expected " + std::to_string(kMagic));
  if (header[1] != kVersion)
    throw Error(path + ": unsupported token file version " + std::to_string(header[1]) + " at byte offset 4, expected " +
                std::to_string(kVersion) + " (uint16 tokens)");
  const int64_t count = header[2];
  if (count < 0) throw Error(path + ": negative token count " + std::to_string(count) + " at byte offset 8");
  const int64_t expected = kHeaderBytes + 2 * count;
  if (expected != size)
    throw Error(path + ": token count " + std::to_string(count) + " at byte offset 8 needs " + std::to_string(expected) +
                " bytes (header " + std::to_string(kHeaderBytes) + " + 2 per token), but the file has " +
                std::to_string(size) + " bytes");
  if (count < batch * seq + 1)
    throw Error(path + ": " + std::to_string(count) + " tokens are too few for one batch of " + std::to_string(batch) +
                " x " + std::to_string(seq) + " (needs " + std::to_string(batch * seq + 1) + ": inputs plus one target)");

  tokens_ = HostBuffer<int32_t>(pool, count, "the token file");
  HostBuffer<uint16_t> staging(pool, std::min(count, kChunkTokens), "token file staging");
  for (int64_t begin = 0; begin < count; begin += staging.size()) {
    int64_t n = std::min(staging.size(), count - begin);
    read_exact(f.get(), staging.data(), 2 * n, path, kHeaderBytes + 2 * begin);
    for (int64_t k = 0; k < n; k++) {
      int32_t t = staging[k];
      if (t >= vocab) {
        int64_t index = begin + k;
        throw Error(path + ": token " + std::to_string(t) + " at index " + std::to_string(index) + " (byte offset " +
                    std::to_string(kHeaderBytes + 2 * index) + ") is outside the model's vocabulary of " +
                    std::to_string(vocab) + " tokens; was the file tokenized for another model?");
      }
      tokens_[begin + k] = t;
    }
  }
}

void TokenData::next_batch(int32_t* inputs, int32_t* targets, int64_t first_row, int64_t rows) {
  if (first_row < 0 || rows < 0 || first_row + rows > batch_)
    throw Error("internal: rows [" + std::to_string(first_row) + ", " + std::to_string(first_row + rows) + ") of a batch of " +
                std::to_string(batch_));
  const int64_t n = batch_ * seq_;
  if (position_ < 0 || position_ + n + 1 > count()) position_ = 0;
  const int32_t* from = tokens_.data() + position_ + first_row * seq_;
  std::memcpy(inputs, from, size_t(rows * seq_) * sizeof(int32_t));
  std::memcpy(targets, from + 1, size_t(rows * seq_) * sizeof(int32_t));
  position_ += n;
}

}  // namespace stow
