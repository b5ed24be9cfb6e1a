// The disk part of the `cpu` probe (cpu_probe.cpp): how fast model data moves to and from the disk tier's
// folder.
#pragma once
#include <string>

// Writes a 256 MiB file in `dir` and reads it back, `repeats` times (at most 3), with the disk tier's
// access pattern: 4 MiB blocks, 4 threads each with its own blocks in flight, O_DIRECT where the file
// system takes it (else buffered, with the written pages dropped from the page cache before the read, so
// the read comes from the disk). The write's time includes its fsync. Returns the JSON object
// {"path", "direct", "write_bytes", "read_bytes"} with the median bytes/s of each; throws
// std::runtime_error naming the path when the folder cannot be written. The file is removed.
std::string disk_rates(const std::string& dir, int repeats);
