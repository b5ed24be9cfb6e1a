#include "step_file.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <sys/stat.h>

#include "ctx.h"

namespace stow {

namespace {

constexpr int32_t kMagic = 20261203;
constexpr int32_t kVersion = 1;
constexpr int64_t kNameBytes = 64;
constexpr int64_t kInputBytes = kNameBytes + 16;

struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};

struct FileInput {
  std::string name;
  int32_t dtype;
  int64_t row_elements;
};

const char* dtype_name(int dtype) { return dtype == INPUT_I32 ? "int32" : dtype == INPUT_F32 ? "float32" : "unknown"; }

}  // namespace

StepData::StepData(const std::string& path, const ProgramDesc& program, int64_t rows, HostPool& pool) : path_(path) {
  std::unique_ptr<FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  if (!f) throw Error(path + ": cannot open step file: " + std::strerror(errno));
  struct stat st;
  if (fstat(fileno(f.get()), &st) != 0 || S_ISDIR(st.st_mode)) throw Error(path + ": not a step file (not a regular file)");
  auto read = [&](void* dst, int64_t n, const char* what) {
    if (std::fread(dst, 1, size_t(n), f.get()) != size_t(n)) throw Error(path + ": too short for a step file (reading " + what + ")");
  };
  int32_t head[4];
  int64_t counts[2];
  read(head, sizeof head, "the header");
  if (head[0] != kMagic) throw Error(path + ": not a step file: magic " + std::to_string(head[0]) + ", expected " + std::to_string(kMagic));
  if (head[1] != kVersion) throw Error(path + ": step file version " + std::to_string(head[1]) + ", expected " + std::to_string(kVersion));
  read(counts, sizeof counts, "the header");
  const int32_t ninputs = head[2];
  steps_ = counts[0];
  if (ninputs < 1 || steps_ < 1) throw Error(path + ": a step file with " + std::to_string(ninputs) + " inputs and " + std::to_string(steps_) + " steps");
  if (counts[1] != rows)
    throw Error(path + ": holds batches of " + std::to_string(counts[1]) + " rows, the run's global batch is " + std::to_string(rows));

  std::vector<FileInput> file(static_cast<size_t>(ninputs));
  std::vector<int64_t> file_at(static_cast<size_t>(ninputs), 0);
  int64_t step_bytes = 0;
  for (int k = 0; k < ninputs; k++) {
    FileInput& in = file[size_t(k)];
    char name[kNameBytes + 1] = {};
    int32_t dtype[2];
    read(name, kNameBytes, "an input's name");
    read(dtype, sizeof dtype, "an input's dtype");
    read(&in.row_elements, sizeof in.row_elements, "an input's size");
    in.name = name;
    in.dtype = dtype[0];
    file_at[size_t(k)] = step_bytes;
    step_bytes += 4 * rows * in.row_elements;
  }
  for (int i = 0; i < program.ninputs; i++) {
    const InputDesc& want = program.inputs[i];
    int k = 0;
    while (k < ninputs && file[k].name != want.name) k++;
    if (k == ninputs) throw Error(path + ": has no input \"" + want.name + "\", which the model declares");
    if (file[k].dtype != want.dtype || file[k].row_elements != want.row_elements)
      throw Error(path + ": input \"" + want.name + "\" is " + dtype_name(file[k].dtype) + " with " + std::to_string(file[k].row_elements) +
                  " elements per example; the model declares " + dtype_name(want.dtype) + " with " + std::to_string(want.row_elements));
    at_.push_back(file_at[k]);
    row_bytes_.push_back(4 * want.row_elements);
  }
  step_bytes_ = step_bytes;
  const int64_t header = 32 + kInputBytes * ninputs;
  if (st.st_size != header + steps_ * step_bytes_)
    throw Error(path + ": " + std::to_string(steps_) + " steps of " + std::to_string(step_bytes_) + " bytes need " +
                std::to_string(header + steps_ * step_bytes_) + " bytes, the file has " + std::to_string(st.st_size));
  bytes_ = HostBuffer<uint8_t>(pool, steps_ * step_bytes_, "the step file");
  read(bytes_.data(), steps_ * step_bytes_, "the steps");
}

void StepData::next_step() {
  if (position_ < 0 || position_ >= steps_)
    throw Error(path_ + ": holds " + std::to_string(steps_) + " steps, and step " + std::to_string(position_ + 1) + " was asked for");
  current_ = position_++;
}

const uint8_t* StepData::input(int i, int64_t first_row) const {
  return bytes_.data() + current_ * step_bytes_ + at_[size_t(i)] + first_row * row_bytes_[size_t(i)];
}

}  // namespace stow
