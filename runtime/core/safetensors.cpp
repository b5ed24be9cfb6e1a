#include "safetensors.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "atomic_file.h"
#include "ctx.h"
#include "json_mini.h"

namespace stow {

namespace {

// Element sizes of the safetensors dtypes, so that offsets of tensors we skip can be checked too.
int64_t dtype_bytes(const std::string& d) {
  if (d == "F64" || d == "I64" || d == "U64") return 8;
  if (d == "F32" || d == "I32" || d == "U32") return 4;
  if (d == "F16" || d == "BF16" || d == "I16" || d == "U16") return 2;
  if (d == "I8" || d == "U8" || d == "BOOL" || d == "F8_E4M3" || d == "F8_E5M2") return 1;
  return 0;  // unknown: size not checked
}

std::string errno_text() { return std::strerror(errno); }

TensorEntry parse_entry(const std::string& path, const std::string& name, const Json& j, int64_t data_bytes) {
  std::string where = path + ": tensor '" + name + "'";
  if (j.kind != Json::OBJECT) throw Error(where + " in the header is " + json_kind_name(j.kind) + ", expected an object");
  TensorEntry e;
  e.name = name;
  const Json* dtype = j.find("dtype");
  if (dtype == nullptr || dtype->kind != Json::STRING) throw Error(where + " has no string \"dtype\"");
  e.dtype = dtype->text;
  const Json* shape = j.find("shape");
  if (shape == nullptr || shape->kind != Json::ARRAY) throw Error(where + " has no \"shape\" array");
  int64_t numel = 1;
  for (const Json& d : shape->items) {
    int64_t n;
    if (!d.as_index(n)) throw Error(where + " has a shape entry that is not a non-negative integer");
    e.shape.push_back(n);
    numel = (n != 0 && numel > INT64_MAX / n) ? -1 : numel * n;
    if (numel < 0) throw Error(where + " has a shape too large to address");
  }
  const Json* offs = j.find("data_offsets");
  if (offs == nullptr || offs->kind != Json::ARRAY || offs->items.size() != 2 || !offs->items[0].as_index(e.begin) ||
      !offs->items[1].as_index(e.end))
    throw Error(where + " has no \"data_offsets\" pair of non-negative integers");
  if (e.begin > e.end || e.end > data_bytes)
    throw Error(where + " has data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                "] outside the data section of " + std::to_string(data_bytes) + " bytes (truncated file?)");
  int64_t elem = dtype_bytes(e.dtype);
  if (elem > 0 && (numel > INT64_MAX / elem || e.end - e.begin != numel * elem))
    throw Error(where + " has data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) + "] spanning " +
                std::to_string(e.end - e.begin) + " bytes, but " + e.dtype + " of shape " +
                shape_text(e.shape.data(), int(e.shape.size())) + " needs " + std::to_string(numel * elem));
  return e;
}

}  // namespace

std::string shape_text(const int64_t* shape, int rank) {
  std::string s = "[";
  for (int i = 0; i < rank; i++) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

SafetensorsFile::SafetensorsFile(const std::string& path, HostPool& pool) : path_(path) {
  file_.reset(std::fopen(path.c_str(), "rb"));
  if (!file_) throw Error(path + ": cannot open checkpoint: " + errno_text());
  struct stat st;
  if (fstat(fileno(file_.get()), &st) != 0) throw Error(path + ": cannot stat checkpoint: " + errno_text());
  if (S_ISDIR(st.st_mode)) throw Error(path + ": is a directory, expected a safetensors file");
  const int64_t size = st.st_size;
  if (size < 8)
    throw Error(path + ": not a safetensors file: " + std::to_string(size) +
                " bytes, shorter than the 8-byte header length");
  uint8_t len_bytes[8];
  if (std::fread(len_bytes, 1, 8, file_.get()) != 8) throw Error(path + ": cannot read the header length: " + errno_text());
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; i--) header_len = header_len << 8 | len_bytes[i];
  if (header_len > uint64_t(size - 8))
    throw Error(path + ": not a safetensors file, or truncated: the header length at byte offset 0 is " +
                std::to_string(header_len) + " bytes, but only " + std::to_string(size - 8) + " bytes follow it");
  data_start_ = 8 + int64_t(header_len);

  HostBuffer<char> header(pool, int64_t(header_len), "the checkpoint header");
  if (std::fread(header.data(), 1, header_len, file_.get()) != header_len)
    throw Error(path + ": cannot read the header: " + errno_text());
  Json root;
  std::string why;
  int64_t at = 0;
  if (!parse_json(std::string_view(header.data(), header_len), root, why, at))
    throw Error(path + ": invalid JSON in the safetensors header at byte offset " + std::to_string(8 + at) + ": " + why);
  if (root.kind != Json::OBJECT)
    throw Error(path + ": the safetensors header is " + json_kind_name(root.kind) + ", expected an object");

  const int64_t data_bytes = size - data_start_;
  for (const auto& m : root.members) {
    if (m.first == "__metadata__") {
      if (m.second.kind != Json::OBJECT) throw Error(path + ": __metadata__ is not an object");
      for (const auto& kv : m.second.members) {
        if (kv.second.kind != Json::STRING)
          throw Error(path + ": __metadata__ value of \"" + kv.first + "\" is " + json_kind_name(kv.second.kind) +
                      ", expected a string");
        metadata_[kv.first] = kv.second.text;
      }
      continue;
    }
    tensors_.push_back(parse_entry(path, m.first, m.second, data_bytes));
  }
  check_no_overlap();
}

// Two tensors over the same bytes would each read the other's data; the JS reader refuses it too.
void SafetensorsFile::check_no_overlap() const {
  std::vector<const TensorEntry*> by_begin;
  for (const TensorEntry& e : tensors_) by_begin.push_back(&e);
  std::sort(by_begin.begin(), by_begin.end(), [](const TensorEntry* a, const TensorEntry* b) { return a->begin < b->begin; });
  const TensorEntry* reach = nullptr;  // of the tensors so far, the one whose data ends last
  for (const TensorEntry* e : by_begin) {
    if (e->end == e->begin) continue;  // an empty tensor holds no bytes
    if (reach != nullptr && e->begin < reach->end)
      throw Error(path_ + ": tensor '" + e->name + "' at byte offset " + std::to_string(data_start_ + e->begin) +
                  " overlaps tensor '" + reach->name + "' (bytes " + std::to_string(data_start_ + reach->begin) + " to " +
                  std::to_string(data_start_ + reach->end) + ")");
    if (reach == nullptr || e->end > reach->end) reach = e;
  }
}

const TensorEntry* SafetensorsFile::find(const std::string& name) const {
  for (const TensorEntry& e : tensors_)
    if (e.name == name) return &e;
  return nullptr;
}

const std::string* SafetensorsFile::metadata(const std::string& key) const {
  auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

void SafetensorsFile::read_f32(const std::string& name, const int64_t* shape, int rank, float* dst) {
  const TensorEntry* e = find(name);
  if (e == nullptr)
    throw Error(path_ + ": missing tensor '" + name + "' (the model expects F32 of shape " + shape_text(shape, rank) + ")");
  if (e->dtype != "F32")
    throw Error(path_ + ": tensor '" + name + "' has dtype " + e->dtype + "; only F32 is supported");
  bool same = int(e->shape.size()) == rank;
  for (int i = 0; same && i < rank; i++) same = e->shape[i] == shape[i];
  if (!same)
    throw Error(path_ + ": tensor '" + name + "' has shape " + shape_text(e->shape.data(), int(e->shape.size())) +
                " in the file, but the model expects " + shape_text(shape, rank));
  int64_t bytes = e->end - e->begin;
  if (fseeko(file_.get(), off_t(data_start_ + e->begin), SEEK_SET) != 0 ||
      std::fread(dst, 1, size_t(bytes), file_.get()) != size_t(bytes))
    throw Error(path_ + ": cannot read tensor '" + name + "' at byte offset " + std::to_string(data_start_ + e->begin) +
                ": " + (std::ferror(file_.get()) ? errno_text() : "unexpected end of file"));
}

// The index of the first NaN or infinity in data[0, n), or -1. Exponent bits all ones is exactly the
// non-finite floats; an integer test over the bits vectorizes, so the check costs a fraction of the write.
int64_t first_non_finite(const float* data, int64_t n) {
  const uint32_t* bits = reinterpret_cast<const uint32_t*>(data);
  const int64_t block = 4096;
  for (int64_t start = 0; start < n; start += block) {
    const int64_t stop = std::min(n, start + block);
    uint32_t any = 0;
    for (int64_t i = start; i < stop; i++) any |= (bits[i] & 0x7f800000u) == 0x7f800000u;
    if (!any) continue;
    for (int64_t i = start; i < stop; i++)
      if ((bits[i] & 0x7f800000u) == 0x7f800000u) return i;
  }
  return -1;
}

namespace {

// Tests force two saves to interleave (test/system/concurrent_save.test.ts): with STOW_TEST_PAUSE_SAVE=DIR,
// the writer stops after its first tensor, says so by creating DIR/paused-<pid>, and goes on once
// DIR/resume exists. Unset, as always outside that test, this costs one getenv per save.
void pause_for_test() {
  const char* dir = std::getenv("STOW_TEST_PAUSE_SAVE");
  if (dir == nullptr || *dir == '\0') return;
  const std::string paused = std::string(dir) + "/paused-" + std::to_string(getpid());
  if (FILE* f = std::fopen(paused.c_str(), "w")) std::fclose(f);
  const std::string resume = std::string(dir) + "/resume";
  for (int i = 0; i < 60000 && access(resume.c_str(), F_OK) != 0; i++) usleep(1000);
}

}  // namespace

SafetensorsWriter::SafetensorsWriter(const std::string& path, std::vector<TensorShape> tensors,
                                     const std::vector<std::pair<std::string, std::string>>& metadata, HostPool& pool,
                                     SaveOptions options)
    : tensors_(std::move(tensors)), options_(std::move(options)), file_(path) {
  std::string json = "{\"__metadata__\":{";
  for (size_t i = 0; i < metadata.size(); i++)
    json += (i ? "," : "") + json_quote(metadata[i].first) + ":" + json_quote(metadata[i].second);
  json += "}";
  int64_t offset = 0;
  for (const TensorShape& t : tensors_) {
    int64_t numel = 1;
    for (int64_t d : t.shape) numel *= d;
    int64_t end = offset + 4 * numel;
    json += "," + json_quote(t.name) + ":{\"dtype\":\"F32\",\"shape\":" + shape_text(t.shape.data(), int(t.shape.size())) +
            ",\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(end) + "]}";
    offset = end;
  }
  json += "}";
  json.append((8 - json.size() % 8) % 8, ' ');  // the data section starts 8-byte aligned

  HostBuffer<char> header(pool, 8 + int64_t(json.size()), "the checkpoint header");
  uint64_t len = json.size();
  for (int i = 0; i < 8; i++) header[i] = char(len >> (8 * i) & 0xFF);
  std::memcpy(header.data() + 8, json.data(), json.size());
  file_.write(header.data(), size_t(header.size()));
}

void SafetensorsWriter::write_next(const float* data) {
  if (next_ >= tensors_.size()) throw Error("internal: more tensors written than the checkpoint header lists");
  int64_t numel = 1;
  for (int64_t d : tensors_[next_].shape) numel *= d;
  write_next([&](const Put& put) { put(data, numel); });
}

void SafetensorsWriter::write_next(const std::function<void(const Put&)>& pieces) {
  if (next_ >= tensors_.size()) throw Error("internal: more tensors written than the checkpoint header lists");
  const TensorShape& t = tensors_[next_];
  int64_t numel = 1;
  for (int64_t d : t.shape) numel *= d;
  int64_t written = 0;
  pieces([&](const float* data, int64_t n) {
    // Checked piece by piece as it is written: a non-finite state leaves the temporary file, which the
    // AtomicFile removes, and never replaces a finite checkpoint.
    if (options_.require_finite) {
      int64_t bad = first_non_finite(data, n);
      if (bad >= 0) throw NonFiniteError(t.name, written + bad, data[bad]);
    }
    file_.write(data, size_t(4 * n));
    written += n;
  });
  if (written != numel)
    throw Error("internal: " + std::to_string(written) + " elements written of tensor '" + t.name + "', which has " + std::to_string(numel));
  if (next_++ == 0) pause_for_test();
}

void SafetensorsWriter::commit() {
  if (next_ != tensors_.size()) throw Error("internal: a checkpoint committed before all its tensors were written");
  file_.commit(options_.also_as);
}

NonFiniteError::NonFiniteError(const std::string& tensor, int64_t index, float value)
    : Error("tensor '" + tensor + "' holds " + (std::isnan(value) ? "NaN" : value > 0 ? "+inf" : "-inf") + " at element " +
            std::to_string(index)) {}

}  // namespace stow
