// The checkpoints a run keeps (--keep K): the save path always holds the newest, and with K > 1 each
// save is also named <stem>.step<N><ext> (ckpt.step160.safetensors), of which the K newest stay.
#pragma once
#include <cstdint>
#include <string>

namespace stow {

// "out/ckpt.safetensors", 160 -> "out/ckpt.step160.safetensors".
std::string step_copy_name(const std::string& path, int64_t step);

// Removes the step copies of `path` beyond the `keep` of highest step.
void prune_step_copies(const std::string& path, int keep);

}  // namespace stow
