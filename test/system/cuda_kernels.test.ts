// Builds test/native/cuda_kernels_check.cpp against the emulated CUDA target (runtime/cuda/*.cu compiled
// by g++ as C++ against runtime/cuda/emulate/include, as `--backend cuda --emulate` builds them) and the
// CPU kernels, and runs it. The C++ program holds the checks: every launch wrapper of cuda_kernels.h
// against the CPU kernel of the same name, bitwise where the summation order is the same by design,
// within stated tolerances elsewhere; this file only compiles it, runs it, and surfaces its FAIL lines.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { EMULATE_CXXFLAGS, EMULATE_LDLIBS } from "../../codegen/backends/cuda/toolchain.ts";
import { repoRoot } from "../helpers/run.ts";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "stow-cuda-kernels-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** codegen/build.ts's compiler flags, at -O2 rather than -O3: compiling is most of this test's time. */
const CXXFLAGS = ["-O2", "-march=native", "-fno-math-errno", "-fopenmp", "-std=c++17", "-fPIC", "-Iruntime"];

function list(dir: string, pattern: RegExp): string[] {
  return fs
    .readdirSync(path.join(repoRoot, dir))
    .filter((f) => pattern.test(f))
    .sort()
    .map((f) => path.join(dir, f));
}

/**
 * What the checker links: the CUDA kernels and the runtime they need (runtime.cu: streams and the host
 * worker of transfer_engine.cpp and its pool, host_threads.cpp; cublas.cu, which the emulation resolves to its cuBLAS stand-in;
 * node_uses.cu), the emulation (not emulate/mpi/, the NCCL stand-in of --tp builds), and the CPU
 * kernels as references with the single-process communicator for the collectives at one rank. The
 * CUDA device (device_cuda.cu) and the NCCL loader (comm_nccl.cu, nccl.cu, dynload.cu) are not linked:
 * every emulated training build compiles them.
 */
function sources(): string[] {
  return [
    ...list("runtime/cuda", /^kernels_.*\.cu$/),
    "runtime/cuda/runtime.cu",
    "runtime/cuda/cublas.cu",
    "runtime/cuda/node_uses.cu",
    ...list("runtime/cuda/emulate", /\.cpp$/),
    ...list("runtime/cpu", /^kernels.*\.cpp$/),
    "runtime/core/transfer_engine.cpp",
    "runtime/core/worker.cpp",
    "runtime/core/disk_pipeline.cpp",
    "runtime/core/host_threads.cpp",
    "runtime/core/disk_tier.cpp",
    "runtime/comm/comm_single.cpp",
    "test/native/cuda_kernels_check.cpp",
  ];
}

/**
 * As an emulated build compiles: the .cu files (as C++) and the emulation's sources against the emulated
 * CUDA headers, and so the checker, which includes them; the CPU runtime with the plain flags.
 */
function compile(source: string, object: string): Promise<{ source: string; code: number | null; stderr: string }> {
  const cuda = source.endsWith(".cu");
  const emulated = cuda || source.startsWith("runtime/cuda/emulate/") || source.includes("cuda_kernels_check");
  const args = [...CXXFLAGS, ...(emulated ? EMULATE_CXXFLAGS : []), ...(cuda ? ["-x", "c++"] : []), "-c", source, "-o", object];
  return new Promise((resolve) => {
    const child = spawn("g++", args, { cwd: repoRoot });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (code) => resolve({ source, code, stderr }));
  });
}

/** Compiles every source, `width` at a time; returns the objects in source order. */
async function compileAll(srcs: string[], width: number): Promise<string[]> {
  const objects = srcs.map((s, i) => path.join(dir, `${i}-${path.basename(s)}.o`));
  const failures: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < srcs.length) {
      const i = next++;
      const r = await compile(srcs[i], objects[i]);
      if (r.code !== 0) failures.push(`g++ failed on ${r.source}:\n${r.stderr}`);
    }
  };
  await Promise.all(Array.from({ length: width }, worker));
  expect(failures.join("\n")).toBe("");
  return objects;
}

describe("CUDA kernels on the emulated target", () => {
  it("match the CPU kernels on awkward shapes", async () => {
    const objects = await compileAll(sources(), 2);
    const binary = path.join(dir, "cuda_kernels_check");
    const link = spawnSync("g++", ["-fopenmp", ...objects, "-lopenblas", ...EMULATE_LDLIBS, "-o", binary], {
      cwd: repoRoot,
      encoding: "utf8",
    });
    expect(link.status, link.stderr).toBe(0);

    const run = spawnSync(binary, [], { cwd: repoRoot, encoding: "utf8", maxBuffer: 16 << 20 });
    const lines = run.stdout.trim().split("\n");
    const failures = lines.filter((l) => l.startsWith("FAIL"));
    expect(failures, run.stderr).toEqual([]);
    expect(run.status, run.stderr).toBe(0);
    // Every check ran (one line each) and passed.
    expect(lines.filter((l) => l.startsWith("ok ")).length).toBeGreaterThanOrEqual(40);
    expect(lines.at(-1)).toMatch(/^\d+ passed, 0 failed$/);
  });
});
