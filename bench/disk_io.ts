// The disk tier's I/O against io_uring, part of the disk-tier section (bench/disk_io.cpp): the runtime's
// DiskTier over a pool of threads against one thread driving io_uring at the same queue depth and
// request size, on the tier's folder. io_uring is measured where liburing is installed (Debian's
// liburing-dev); the runtime does not use it, so it is not a dependency of the build.
import { spawnSync } from "node:child_process";
import path from "node:path";
import { CXXFLAGS } from "../codegen/toolchain.ts";
import { repoRoot } from "../base/paths.ts";
import { lastJsonLine, runChild } from "./child.ts";

const MIB = 512;
const ROUNDS = 5;

export interface DiskIoRates {
  write_bytes_per_s: number;
  read_bytes_per_s: number;
  mixed_bytes_per_s: number; // reading one region while writing another, both counted
}

export interface DiskIoResults {
  bytes: number;
  rounds: number;
  depth: number;
  request_bytes: number;
  threads: DiskIoRates;
  io_uring: DiskIoRates | null; // null: liburing is not installed
}

export function measureDiskIo(dir: string, workDir: string, env: NodeJS.ProcessEnv): DiskIoResults {
  const binary = path.join(workDir, "disk_io");
  const sources = ["bench/disk_io.cpp", "runtime/core/disk_tier.cpp", "runtime/core/host_threads.cpp"].map((s) => path.join(repoRoot, s));
  const build = (uring: boolean) => [
    ...CXXFLAGS,
    `-I${path.join(repoRoot, "runtime")}`,
    ...(uring ? ["-DSTOW_BENCH_URING"] : []),
    ...sources,
    "-o",
    binary,
    ...(uring ? ["-luring"] : []),
  ];
  // Without liburing the io_uring build fails; the threads alone are then measured.
  if (spawnSync("g++", build(true), { env }).status !== 0) runChild("disk I/O: build", "g++", build(false), env);
  console.log(`disk I/O: the disk tier's threads against io_uring, ${MIB} MiB x ${ROUNDS} rounds...`);
  return lastJsonLine<DiskIoResults>("disk I/O", runChild("disk I/O", binary, [dir, String(MIB), String(ROUNDS)], env));
}
