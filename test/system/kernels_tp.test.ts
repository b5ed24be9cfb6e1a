// Builds test/native/kernels_tp_check.cpp against the tensor-parallel kernels and runs it; the C++
// program holds the checks (naive double-precision references over simulated ranks).
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { repoRoot } from "../helpers/run.ts";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "stow-kernels-tp-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("tensor-parallel kernels", () => {
  it("match naive references over simulated ranks", () => {
    const binary = path.join(dir, "kernels_tp_check");
    const build = spawnSync(
      "g++",
      [
        "-O2",
        "-march=native",
        "-fopenmp",
        "-std=c++17",
        "-Iruntime",
        // kernels_adamw.cpp holds the sum of squares that sum_squares shares with grad_norm; its host
        // AdamW links the host thread pool and the disk tier.
        "test/native/kernels_tp_check.cpp",
        "runtime/cpu/kernels_tp.cpp",
        "runtime/cpu/kernels_adamw.cpp",
        "runtime/core/host_threads.cpp",
        "runtime/core/disk_tier.cpp",
        "-o",
        binary,
      ],
      { cwd: repoRoot, encoding: "utf8" },
    );
    expect(build.status, build.stderr).toBe(0);
    const run = spawnSync(binary, [], { cwd: repoRoot, encoding: "utf8" });
    const lines = run.stdout.trim().split("\n");
    expect(
      lines.filter((l) => l.startsWith("FAIL")),
      run.stderr,
    ).toEqual([]);
    expect(run.status, run.stderr).toBe(0);
    expect(lines.at(-1)).toMatch(/^\d+ passed, 0 failed$/);
  });
});
