#include "dynload.h"

#include <dlfcn.h>
#include <glob.h>

#include <cstdlib>

#include "core/ctx.h"

namespace stow::cuda {
namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

// Directories to try after the loader's own search, as glob patterns, in order.
std::vector<std::string> search_patterns() {
  std::vector<std::string> dirs;
  for (const char* var : {"CUDA_HOME", "CUDA_PATH"})
    if (!env(var).empty()) dirs.push_back(env(var) + "/lib64");
  dirs.insert(dirs.end(), {"/usr/local/cuda/lib64", "/usr/local/cuda/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib"});
  // NVIDIA's wheels (nvidia-cublas-cu12, nvidia-cublas for CUDA 13, nvidia-nccl-cu12, ...) put each
  // library in site-packages/nvidia/<package>/lib (CUDA 13's in nvidia/cu13/lib).
  std::vector<std::string> prefixes;
  for (const char* var : {"VIRTUAL_ENV", "CONDA_PREFIX"})
    if (!env(var).empty()) prefixes.push_back(env(var));
  if (!env("HOME").empty()) prefixes.push_back(env("HOME") + "/.local");
  prefixes.insert(prefixes.end(), {"/usr/local", "/usr", "/opt/conda"});
  for (const std::string& prefix : prefixes)
    for (const char* packages : {"site-packages", "dist-packages"})
      dirs.push_back(prefix + "/lib/python3*/" + packages + "/nvidia/*/lib");
  return dirs;
}

std::vector<std::string> expand(const std::string& pattern) {
  std::vector<std::string> out;
  glob_t g{};
  if (glob(pattern.c_str(), GLOB_NOSORT, nullptr, &g) == 0)
    for (size_t i = 0; i < g.gl_pathc; i++) out.push_back(g.gl_pathv[i]);
  globfree(&g);
  return out;
}

}  // namespace

void* open_library(const std::string& what, const std::vector<std::string>& sonames, const std::string& install) {
  for (const std::string& name : sonames)
    if (void* h = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL)) return h;
  std::string searched;
  for (const std::string& pattern : search_patterns()) {
    searched += "\n  " + pattern;
    for (const std::string& dir : expand(pattern))
      for (const std::string& name : sonames)
        if (void* h = dlopen((dir + "/" + name).c_str(), RTLD_NOW | RTLD_LOCAL)) return h;
  }
  std::string names;
  for (const std::string& name : sonames) names += (names.empty() ? "" : ", ") + name;
  throw Error("cannot load " + what + " (" + names + "): not found by the dynamic loader (LD_LIBRARY_PATH, " +
              "the ld.so cache) nor in:" + searched + "\n" + install);
}

void* library_symbol(void* library, const std::string& what, const char* name) {
  void* f = dlsym(library, name);
  if (f == nullptr) throw Error("the loaded " + what + " has no function " + name + " (is it too old?)");
  return f;
}

}  // namespace stow::cuda
