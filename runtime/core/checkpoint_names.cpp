#include "checkpoint_names.h"

#include <dirent.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <utility>
#include <vector>

#include "atomic_file.h"

namespace stow {

namespace {

// The file name split at its extension: "ckpt.safetensors" -> {"ckpt", ".safetensors"}.
std::pair<std::string, std::string> stem_and_ext(const std::string& path) {
  size_t slash = path.find_last_of('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  size_t dot = base.find_last_of('.');
  if (dot == std::string::npos || dot == 0) return {base, ""};
  return {base.substr(0, dot), base.substr(dot)};
}

}  // namespace

std::string step_copy_name(const std::string& path, int64_t step) {
  auto [stem, ext] = stem_and_ext(path);
  return folder_of(path) + "/" + stem + ".step" + std::to_string(step) + ext;
}

void prune_step_copies(const std::string& path, int keep) {
  auto [stem, ext] = stem_and_ext(path);
  const std::string prefix = stem + ".step";
  const std::string folder = folder_of(path);
  std::vector<std::pair<long long, std::string>> copies;  // (step, name)
  DIR* dir = opendir(folder.c_str());
  if (dir == nullptr) return;
  while (dirent* e = readdir(dir)) {
    std::string name = e->d_name;
    if (name.size() <= prefix.size() + ext.size() || name.compare(0, prefix.size(), prefix) != 0 ||
        name.compare(name.size() - ext.size(), ext.size(), ext) != 0)
      continue;
    std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - ext.size());
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    copies.emplace_back(std::atoll(digits.c_str()), name);
  }
  closedir(dir);
  std::sort(copies.begin(), copies.end(), std::greater<>());
  for (size_t i = size_t(keep); i < copies.size(); i++) std::remove((folder + "/" + copies[i].second).c_str());
}

}  // namespace stow
