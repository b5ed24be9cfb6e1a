// The emulated CUDA target's own test: builds test/native/emulation_check.cu as C++ against
// runtime/cuda/emulate/ (the flags of codegen/backends/cuda/toolchain.ts) and runs it. The C++ program holds the
// checks (CUDA's semantics for indices, shared memory, warp intrinsics, atomics, launches, streams,
// events, the legacy default stream, memory, the race checker, the cuBLAS stand-in and bfloat16, with
// expected values written independently of the emulation); this file compiles it, writes PyTorch's
// float -> bfloat16 conversion of 6,000 floats as a second reference, runs the checks that leave the
// context usable in one process and each check whose error is sticky in a process of its own, and
// surfaces the FAIL lines. test/native/nccl_emulation_check.cpp checks the NCCL stand-in under
// `mpirun -np 2` the same way.
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EMULATE_CXXFLAGS, EMULATE_LDLIBS } from "../../codegen/backends/cuda/toolchain.ts";
import { repoRoot } from "../helpers/run.ts";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "stow-emulation-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const binary = path.join(dir, "emulation_check");
const ncclBinary = path.join(dir, "nccl_emulation_check");
const bf16Reference = path.join(dir, "bf16_torch.txt");

/** Checks whose error poisons the context (or may, where the emulation is wrong): one process each. */
const ISOLATED = [
  "mask_leaves_out_caller",
  "shuffle_waits_for_exited",
  "shuffle_names_exited",
  "barrier_deadlock",
  "diverged_exchanges",
  "pageable_host_pointer",
  "calls_after_sticky_error",
];

interface Result {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], options: { timeoutMs: number; env?: Record<string, string> }): Promise<Result> {
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      {
        cwd: repoRoot,
        encoding: "utf8",
        maxBuffer: 64 << 20,
        timeout: options.timeoutMs,
        killSignal: "SIGKILL",
        env: { ...process.env, ...options.env },
      },
      (error, stdout, stderr) => {
        const code = error && typeof error.code === "number" ? error.code : error ? null : 0;
        resolve({ status: code, signal: error?.signal ?? null, stdout, stderr });
      },
    );
  });
}

// PyTorch (Debian's python3-torch) converts random bit patterns, ties (low 16 bits 0x8000), and floats
// near 1; one "input output" pair of hex bit patterns a line.
const TORCH_BF16 = `
import torch
g = torch.Generator().manual_seed(20261202)
bits = torch.randint(0, 2**32, (4000,), generator=g, dtype=torch.int64)
ties = (bits[:1000] & ~0xffff) | 0x8000
near_one = torch.randint(0x3f000000, 0x40800000, (1000,), generator=g, dtype=torch.int64)
inputs = torch.cat([bits, ties, near_one])
floats = ((inputs + 2**31) % 2**32 - 2**31).to(torch.int32).view(torch.float32)
outputs = floats.to(torch.bfloat16).view(torch.int16).to(torch.int64) & 0xffff
print("\\n".join("%08x %04x" % (a, b) for a, b in zip(inputs.tolist(), outputs.tolist())))
`;

const sources = fs
  .readdirSync(path.join(repoRoot, "runtime/cuda/emulate"))
  .filter((f) => f.endsWith(".cpp"))
  .sort()
  .map((f) => path.join("runtime/cuda/emulate", f));

const CXXFLAGS = ["-O2", "-std=c++17", "-fopenmp", "-Iruntime", ...EMULATE_CXXFLAGS];

// More kernel OS threads than cores, so that blocks certainly run at once (the shared-memory and
// atomics checks need it) whatever the machine.
const ENV = { STOW_EMULATE_THREADS: "4" };

function summary(r: Result): { failures: string[]; last: string | undefined } {
  const lines = r.stdout.trim().split("\n");
  return { failures: lines.filter((l) => l.startsWith("FAIL")), last: lines.at(-1) };
}

describe("emulated CUDA target", () => {
  beforeAll(async () => {
    // Objects in parallel, with PyTorch's reference alongside.
    const objects = [...sources, "test/native/emulation_check.cu"].map((s) => path.join(dir, path.basename(s) + ".o"));
    const [torch, ...compiles] = await Promise.all([
      run("/usr/bin/python3", ["-c", TORCH_BF16], { timeoutMs: 300_000 }),
      ...sources.map((s, i) => run("g++", [...CXXFLAGS, "-c", s, "-o", objects[i]], { timeoutMs: 300_000 })),
      run("g++", [...CXXFLAGS, "-x", "c++", "-c", "test/native/emulation_check.cu", "-o", objects.at(-1)!], { timeoutMs: 300_000 }),
    ]);
    for (const c of compiles) expect(c.status, c.stderr).toBe(0);
    expect(torch.status, torch.stderr).toBe(0);
    fs.writeFileSync(bf16Reference, torch.stdout);
    const link = await run("g++", [...objects, "-lopenblas", "-fopenmp", ...EMULATE_LDLIBS, "-o", binary], { timeoutMs: 120_000 });
    expect(link.status, link.stderr).toBe(0);

    // The NCCL stand-in and its check need MPI's flags: mpicxx, linked with the same emulation objects.
    const mpiObjects = ["runtime/cuda/emulate/mpi/nccl_standin.cpp", "test/native/nccl_emulation_check.cpp"].map((s) =>
      path.join(dir, path.basename(s) + ".mpi.o"),
    );
    const mpiCompiles = await Promise.all(
      ["runtime/cuda/emulate/mpi/nccl_standin.cpp", "test/native/nccl_emulation_check.cpp"].map((s, i) =>
        run("mpicxx", [...CXXFLAGS, "-c", s, "-o", mpiObjects[i]], { timeoutMs: 300_000 }),
      ),
    );
    for (const c of mpiCompiles) expect(c.status, c.stderr).toBe(0);
    const mpiLink = await run(
      "mpicxx",
      [...mpiObjects, ...objects.slice(0, -1), "-lopenblas", "-fopenmp", ...EMULATE_LDLIBS, "-o", ncclBinary],
      { timeoutMs: 120_000 },
    );
    expect(mpiLink.status, mpiLink.stderr).toBe(0);
  });

  it("has CUDA's semantics (the checks that leave the context usable, in one process)", async () => {
    const r = await run(binary, ["--bf16-reference", bf16Reference], { timeoutMs: 120_000, env: ENV });
    const { failures, last } = summary(r);
    expect(failures, r.stderr).toEqual([]);
    expect(r.signal, "killed: it ran past its time limit").toBeNull();
    expect(r.status, r.stderr).toBe(0);
    expect(last).toMatch(/^\d+ passed, 0 failed$/);
    expect(Number(last!.split(" ")[0])).toBeGreaterThan(90);
  });

  it("has NCCL's semantics over MPI (2 ranks)", async () => {
    const r = await run("mpirun", ["--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", "2", ncclBinary], {
      timeoutMs: 120_000,
      env: ENV,
    });
    const lines = r.stdout.trim().split("\n");
    expect(
      lines.filter((l) => l.startsWith("FAIL")),
      r.stderr,
    ).toEqual([]);
    expect(r.signal, "killed: it ran past its time limit").toBeNull();
    expect(r.status, r.stderr).toBe(0);
    // Rank 0 prints both ranks' total last.
    expect(lines.at(-1)).toMatch(/^\d+ passed, 0 failed$/);
    expect(Number(lines.at(-1)!.split(" ")[0])).toBeGreaterThan(40);
  });

  it.each(ISOLATED)("%s (a sticky error: its own process)", async (name) => {
    const r = await run(binary, ["--only", name], { timeoutMs: 60_000, env: ENV });
    const { failures, last } = summary(r);
    expect(failures, r.stderr).toEqual([]);
    expect(r.signal, "killed: it ran past its time limit").toBeNull();
    expect(r.status, r.stderr).toBe(0);
    expect(last).toMatch(/^[1-9]\d* passed, 0 failed$/);
  });
});
