// Safetensors checkpoints: an 8-byte little-endian header length, a JSON header (tensor name ->
// dtype, shape, data_offsets; plus "__metadata__" of string values), then the raw data. The reader
// validates the whole header up front and reads tensors straight into their destination; the writer
// is atomic (atomic_file.h) and can refuse to write a NaN or infinity.
#pragma once
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "ctx.h"
#include "host_pool.h"

namespace stow {

struct TensorEntry {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  int64_t begin = 0, end = 0;  // byte range within the data section
};

class SafetensorsFile {
 public:
  // Opens and validates the header; throws stow::Error naming the file (and byte offset when it helps).
  SafetensorsFile(const std::string& path, HostPool& pool);
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<TensorEntry>& tensors() const { return tensors_; }
  const TensorEntry* find(const std::string& name) const;
  // A "__metadata__" value, or nullptr when the key is absent.
  const std::string* metadata(const std::string& key) const;

  // Reads tensor `name` into dst; it must exist, be F32 and have exactly the expected shape.
  void read_f32(const std::string& name, const int64_t* shape, int rank, float* dst);

 private:
  void check_no_overlap() const;
  struct Closer {
    void operator()(FILE* f) const { std::fclose(f); }
  };
  std::string path_;
  std::unique_ptr<FILE, Closer> file_;
  int64_t data_start_ = 0;
  std::vector<TensorEntry> tensors_;
  std::map<std::string, std::string> metadata_;
};

struct TensorOut {
  std::string name;
  std::vector<int64_t> shape;
  const float* data;
  // Where data is null: gives it when the tensor's turn to be written comes (a moment read back from
  // the disk tier into a buffer each such tensor reuses, so a save never holds them all in memory).
  std::function<const float*()> load = nullptr;
};

struct SaveOptions {
  // Refuse (NonFiniteError, nothing written) when a tensor holds a NaN or an infinity.
  bool require_finite = false;
  // A second name for the written file (AtomicFile::commit), e.g. a step-numbered copy to keep.
  std::string also_as;
};

// A training state that is no longer finite: saving it would replace a good checkpoint with garbage.
struct NonFiniteError : Error {
  NonFiniteError(const std::string& tensor, int64_t index, float value);
  explicit NonFiniteError(const std::string& message) : Error(message) {}
};

// Writes F32 tensors in the given order with contiguous data offsets, atomically.
void save_safetensors(const std::string& path, const std::vector<TensorOut>& tensors,
                      const std::vector<std::pair<std::string, std::string>>& metadata, HostPool& pool,
                      const SaveOptions& options = {});

// The index of the first NaN or infinity in data[0, n), or -1.
int64_t first_non_finite(const float* data, int64_t n);

// "[32, 16]" for messages.
std::string shape_text(const int64_t* shape, int rank);

}  // namespace stow
