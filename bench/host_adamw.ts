// The host AdamW section (`npm run bench -- host-adamw`): the runtime's AdamW of offloaded chunks
// (host_adamw on the host pool) on 16 Mi parameters, far beyond any cache, on a pool of 1 thread (what
// the host worker did alone before the pool) and of the bench's thread count, against an OpenMP triad
// on the same machine at that thread count, measured in the same rounds (bench/host_adamw.cpp). The
// binary is built with the flags a plan is built with, so it runs the loop a plan runs.
import path from "node:path";
import { CXXFLAGS } from "../codegen/toolchain.ts";
import { repoRoot } from "../base/paths.ts";
import { lastJsonLine, runChild } from "./child.ts";
import { loadAverage } from "./machine.ts";

/** What the issue counts an AdamW element as moving: p, g, m, v read and p, m, v written. */
export const ADAMW_BYTES_PER_PARAM = 28;
const ELEMENTS = 16 << 20;
const ROUNDS = 15;

interface HostAdamwRun {
  elements: number;
  rounds: number;
  triad_threads: number;
  triad_bytes_per_s: number;
  adamw: { threads: number; seconds: number }[];
}

export interface HostAdamwResults extends HostAdamwRun {
  date: string;
  load_average_before: number[];
  load_average_after: number[];
}

export function runHostAdamwSection(threads: number, workDir: string, env: NodeJS.ProcessEnv): HostAdamwResults {
  const binary = path.join(workDir, "host_adamw");
  const sources = ["bench/host_adamw.cpp", "runtime/cpu/kernels_adamw.cpp", "runtime/core/host_threads.cpp", "runtime/core/disk_tier.cpp"];
  runChild(
    "host AdamW: build",
    "g++",
    [...CXXFLAGS, `-I${path.join(repoRoot, "runtime")}`, ...sources.map((s) => path.join(repoRoot, s)), "-o", binary],
    env,
  );
  console.log(`host AdamW (${ELEMENTS} parameters, pools of 1 and ${threads} threads, triad on ${threads})...`);
  const load = loadAverage();
  const run = lastJsonLine<HostAdamwRun>(
    "host AdamW",
    runChild("host AdamW", binary, [String(ELEMENTS), String(ROUNDS), "1", String(threads)], { ...env, OMP_NUM_THREADS: String(threads) }),
  );
  return { date: new Date().toISOString(), load_average_before: load, load_average_after: loadAverage(), ...run };
}
