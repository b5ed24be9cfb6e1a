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

#include "atomic_file.h"
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

// A tensor's name and shape in the header: a file's header is written before any tensor's data.
struct TensorShape {
  std::string name;
  std::vector<int64_t> shape;
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

// Writes F32 tensors atomically in the order of `tensors`, with contiguous data offsets: the header at
// once, then each tensor's data as write_next is given it, so that a caller may make one tensor at a
// time and never hold them all. Nothing replaces `path` until commit().
class SafetensorsWriter {
 public:
  SafetensorsWriter(const std::string& path, std::vector<TensorShape> tensors,
                    const std::vector<std::pair<std::string, std::string>>& metadata, HostPool& pool,
                    SaveOptions options = {});
  // The next tensor's data; throws NonFiniteError (under require_finite) or an I/O error.
  void write_next(const float* data);
  // The same, in pieces: `pieces` hands `put` each piece in order (its data, its elements).
  using Put = std::function<void(const float*, int64_t)>;
  void write_next(const std::function<void(const Put&)>& pieces);
  // Every tensor written: renames the file over `path`.
  void commit();

 private:
  std::vector<TensorShape> tensors_;
  SaveOptions options_;
  AtomicFile file_;
  size_t next_ = 0;
};

// The index of the first NaN or infinity in data[0, n), or -1.
int64_t first_non_finite(const float* data, int64_t n);

// "[32, 16]" for messages.
std::string shape_text(const int64_t* shape, int rank);

}  // namespace stow
