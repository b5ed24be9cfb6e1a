// Builds test/native/kernels_check.cpp against the CPU kernels and runs it. The C++ program holds the
// checks (naive double-precision references, finite differences, determinism, arena accounting);
// this file only compiles it, runs it, and surfaces its FAIL lines.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { repoRoot } from "../helpers/run.ts";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "stow-kernels-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** runtime/cpu/kernels*.cpp, as the shell glob would list them. */
function kernelSources(): string[] {
  return fs
    .readdirSync(path.join(repoRoot, "runtime", "cpu"))
    .filter((f) => /^kernels.*\.cpp$/.test(f))
    .sort()
    .map((f) => path.join("runtime", "cpu", f));
}

describe("CPU kernels", () => {
  it("match naive references and finite differences, deterministically", () => {
    const binary = path.join(dir, "kernels_check");
    const build = spawnSync(
      "g++",
      // kernels_transfer.cpp hands work to the transfer engine, so the engine and its host pool are linked too.
      [
        "-O2",
        "-march=native",
        "-fopenmp",
        "-std=c++17",
        "-Iruntime",
        "test/native/kernels_check.cpp",
        ...kernelSources(),
        "runtime/core/transfer_engine.cpp",
        "runtime/core/worker.cpp",
        "runtime/core/disk_pipeline.cpp",
        "runtime/core/host_threads.cpp",
        "runtime/core/disk_tier.cpp",
        "-lopenblas",
        "-o",
        binary,
      ],
      { cwd: repoRoot, encoding: "utf8" },
    );
    expect(build.status, build.stderr).toBe(0);

    const run = spawnSync(binary, [], { cwd: repoRoot, encoding: "utf8", maxBuffer: 16 << 20 });
    const lines = run.stdout.trim().split("\n");
    const failures = lines.filter((l) => l.startsWith("FAIL"));
    expect(failures, run.stderr).toEqual([]);
    expect(run.status, run.stderr).toBe(0);
    expect(lines.at(-1)).toMatch(/^\d+ passed, 0 failed$/);
  });
});
