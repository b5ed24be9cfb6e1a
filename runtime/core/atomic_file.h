// A file that readers, crashes and concurrent writers only ever see whole: it is written under a
// temporary name unique to the process and the write (path.tmp-<pid>-<random>), fsynced, renamed over
// the target, and the folder is fsynced so that the rename survives a power cut. Two runs writing one
// path each rename their own complete file; the later rename wins, never a splice of both.
#pragma once
#include <cstdio>
#include <string>

namespace stow {

class AtomicFile {
 public:
  // Creates the temporary file beside `path`; throws stow::Error naming the path and the reason.
  explicit AtomicFile(const std::string& path);
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  // Removes the temporary file unless commit() succeeded.
  ~AtomicFile();

  FILE* get() { return file_; }
  const std::string& temp_path() const { return temp_; }
  // Writes all of `bytes` or throws.
  void write(const void* data, size_t bytes);
  // Flushes, fsyncs, and renames over the target. With `also_as`, the same file also gets that name (a
  // hard link made before the rename), so a kept copy costs no second write.
  void commit(const std::string& also_as = "");

 private:
  std::string path_, temp_;
  FILE* file_ = nullptr;
  bool committed_ = false;
};

// The folder part of a path ("." for a bare name).
std::string folder_of(const std::string& path);

// Makes a completed rename in `folder` durable.
void sync_folder(const std::string& folder);

// Removes temporaries of `path` left by processes that no longer exist (a kill -9 mid-write); those of
// live processes, which may be writing right now, stay.
void remove_stale_temps(const std::string& path);

}  // namespace stow
