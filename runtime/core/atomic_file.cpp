#include "atomic_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <random>

#include "ctx.h"

namespace stow {

namespace {

std::string errno_text() { return std::strerror(errno); }

// 64 random bits: the pid alone repeats when one process writes a path twice at once (or pids recycle).
std::string random_part() {
  std::random_device device;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%08x%08x", device(), device());
  return buf;
}

std::string base_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

std::string folder_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

void sync_folder(const std::string& folder) {
  int fd = open(folder.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0 || fsync(fd) != 0) {
    std::string why = errno_text();
    if (fd >= 0) close(fd);
    throw Error("cannot sync folder " + folder + ": " + why);
  }
  close(fd);
}

AtomicFile::AtomicFile(const std::string& path)
    : path_(path), temp_(path + ".tmp-" + std::to_string(getpid()) + "-" + random_part()) {
  // O_EXCL: never open a file someone else is writing, whatever the name.
  int fd = open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw Error("cannot write " + path + ": " + errno_text());
  file_ = fdopen(fd, "wb");
  if (file_ == nullptr) {
    std::string why = errno_text();
    close(fd);
    std::remove(temp_.c_str());
    throw Error("cannot write " + path + ": " + why);
  }
}

AtomicFile::~AtomicFile() {
  if (file_ != nullptr) std::fclose(file_);
  if (!committed_) std::remove(temp_.c_str());
}

void AtomicFile::write(const void* data, size_t bytes) {
  if (bytes > 0 && std::fwrite(data, 1, bytes, file_) != bytes) throw Error("cannot write " + path_ + ": " + errno_text());
}

void AtomicFile::commit(const std::string& also_as) {
  bool ok = std::fflush(file_) == 0 && fsync(fileno(file_)) == 0;
  std::string why = ok ? "" : errno_text();
  if (std::fclose(file_) != 0 && ok) {
    ok = false;
    why = errno_text();
  }
  file_ = nullptr;
  if (!ok) throw Error("cannot write " + path_ + ": " + why);
  if (!also_as.empty()) {
    std::remove(also_as.c_str());  // a copy of an earlier run at the same step is replaced
    if (link(temp_.c_str(), also_as.c_str()) != 0) throw Error("cannot keep a copy as " + also_as + ": " + errno_text());
  }
  if (std::rename(temp_.c_str(), path_.c_str()) != 0) throw Error("cannot rename " + temp_ + " to " + path_ + ": " + errno_text());
  committed_ = true;
  sync_folder(folder_of(path_));
}

void remove_stale_temps(const std::string& path) {
  const std::string prefix = base_of(path) + ".tmp-";
  const std::string folder = folder_of(path);
  DIR* dir = opendir(folder.c_str());
  if (dir == nullptr) return;
  while (dirent* e = readdir(dir)) {
    std::string name = e->d_name;
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    char* end = nullptr;
    long pid = std::strtol(name.c_str() + prefix.size(), &end, 10);
    if (pid <= 0 || *end != '-') continue;
    if (kill(pid_t(pid), 0) != 0 && errno == ESRCH) std::remove((folder + "/" + name).c_str());
  }
  closedir(dir);
}

}  // namespace stow
