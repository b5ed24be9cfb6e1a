// The `cpu` target: this machine, measured (src/targets/cpu_probe.cpp) with the thread count the plans
// run with, and cached under the build cache keyed by CPU model, threads, the disk folder measured (when
// one is given) and the sources of the probe and of the kernels it times, so the probe runs once. Device memory is the machine's memory: on the CPU
// backend the arena is ordinary RAM.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { UserError } from "../../base/errors.ts";
import { cacheDir } from "../../base/paths.ts";
import { tempPathFor, writeFileAtomic } from "../util/atomic_write.ts";
import type { Machine } from "../../ir/cost_model.ts";
import { measuredMpiLink } from "./mpi_link.ts";
import type { Target } from "./target.ts";

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** The probe, and its disk part (its own file: system calls, apart from the kernels' timing). */
const PROBE_SOURCES = ["cpu_probe.cpp", "cpu_probe_disk.cpp", "cpu_probe_disk.h"].map((f) => path.join(HERE, f));
/** The runtime kernels the probe times (linked in), and the headers they inline. */
const RUNTIME = path.join(HERE, "..", "..", "runtime");
const KERNELS = ["cpu/kernels_attention.cpp", "cpu/kernels.cpp", "cpu/kernels_norm.cpp"];
const KERNEL_SOURCES = [...KERNELS, "cpu/kernels.h", "cpu/kernels_common.h", "core/kernel_math.h", "core/ctx.h", "core/kernel_types.h"];
const REPEATS = 5;

/** What cpu_probe prints (its header states each field). */
interface ProbeResult {
  threads: number;
  gemm: [number, number, number, number][];
  attention: { T: number[]; D: number[]; forward: number[][]; backward: number[][] };
  softmax_rate: number;
  element_rates: Record<string, number>;
  stream: [number, number][];
  memcpy_bytes: number;
  adamw_bytes: number;
  disk: { path: string; direct: boolean; write_bytes: number; read_bytes: number } | null;
}

export interface CpuMeasureOptions {
  threads: number;
  /** Measure again even when a cached measurement exists (and replace it). */
  fresh?: boolean;
  /** The environment the probe runs in (the OpenBLAS core and OpenMP settings the plans get). */
  env?: NodeJS.ProcessEnv;
  /** A folder on the disk of the disk tier: its read and write bandwidth are measured too. */
  diskPath?: string;
  /** The ranks of the job: when more than one, the MPI link between them is measured too (mpi_link.ts). */
  ranks?: number;
}

export function cpuModel(): string {
  try {
    return /^model name\s*:\s*(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? os.cpus()[0]?.model ?? "unknown";
  } catch {
    return os.cpus()[0]?.model ?? "unknown";
  }
}

export function cpuTarget(opts: CpuMeasureOptions): Target {
  const diskPath = opts.diskPath === undefined ? undefined : path.resolve(opts.diskPath);
  const hash = createHash("sha256").update(`${cpuModel()}\n${opts.threads}\n${diskPath ?? ""}\n`);
  for (const file of [...PROBE_SOURCES, ...KERNEL_SOURCES.map((f) => path.join(RUNTIME, f))]) hash.update(readFileSync(file, "utf8"));
  const key = hash.digest("hex").slice(0, 16);
  const dir = path.join(cacheDir(), "targets");
  const cached = path.join(dir, `cpu-${key}.json`);
  let probe: ProbeResult;
  if (!opts.fresh && existsSync(cached)) probe = JSON.parse(readFileSync(cached, "utf8")) as ProbeResult;
  else {
    probe = runProbe(dir, key, opts.threads, diskPath, opts.env);
    writeFileAtomic(cached, JSON.stringify(probe) + "\n"); // a concurrent reader sees the old file or the whole new one
  }
  const ranks = opts.ranks ?? 1;
  const network = ranks > 1 ? measuredMpiLink(ranks, cpuModel()) : undefined;
  return {
    name: "cpu",
    description:
      `this machine: ${cpuModel()}, ${opts.threads} threads${diskPath ? `, disk tier in ${diskPath}` : ""}` +
      `${network ? `, MPI between ${ranks} ranks` : ""} (measured)`,
    deviceMemory: os.totalmem(),
    machine: { ...probeMachine(probe), ...(network && { network }) },
  };
}

/** The cost model's machine from a probe: products and streams at rates by size, attention, the head's softmax and single kernels as measured. */
function probeMachine(probe: ProbeResult): Machine {
  const productRates = probe.gemm.map(([m, k, n, rate]) => ({ size: 2 * m * k * n, rate })).sort((a, b) => a.size - b.size);
  const streamRates = probe.stream.map(([bytes, rate]) => ({ size: bytes, rate })).sort((a, b) => a.size - b.size);
  return {
    // The largest sizes' rates: what a kernel of unknown size is taken to run at.
    matmulFlops: productRates[productRates.length - 1].rate,
    memoryBandwidth: streamRates[streamRates.length - 1].rate,
    linkBandwidth: probe.memcpy_bytes,
    hostBandwidth: probe.adamw_bytes,
    productRates,
    streamRates,
    attentionRates: probe.attention,
    softmaxRate: probe.softmax_rate,
    elementRates: probe.element_rates,
    ...(probe.disk && { diskReadBandwidth: probe.disk.read_bytes, diskWriteBandwidth: probe.disk.write_bytes }),
  };
}

function runProbe(dir: string, key: string, threads: number, diskPath: string | undefined, env = process.env): ProbeResult {
  const binary = probeBinary(dir, key);
  const args = [String(threads), String(REPEATS), ...(diskPath ? [diskPath] : [])];
  const run = spawnSync(binary, args, { encoding: "utf8", env });
  if (run.error || run.status !== 0)
    throw new UserError(
      `--target cpu${diskPath ? ` with --disk-path ${diskPath}` : ""}: the machine probe failed: ${run.error?.message ?? run.stderr.trim()}`,
    );
  return JSON.parse(run.stdout.trim().split("\n").at(-1)!) as ProbeResult;
}

/** The probe, built once per key (a C++ build of a few seconds; a fresh measurement reuses it). */
function probeBinary(dir: string, key: string): string {
  const binary = path.join(dir, `cpu_probe-${key}`);
  if (existsSync(binary)) return binary;
  mkdirSync(dir, { recursive: true });
  const tmp = tempPathFor(binary);
  const build = spawnSync(
    "g++",
    [
      "-O3",
      "-march=native",
      "-fno-math-errno",
      "-fopenmp",
      "-std=c++17",
      `-I${RUNTIME}`,
      ...PROBE_SOURCES.filter((f) => f.endsWith(".cpp")),
      ...KERNELS.map((f) => path.join(RUNTIME, f)),
      "-o",
      tmp,
      "-lopenblas",
    ],
    { encoding: "utf8" },
  );
  if (build.error || build.status !== 0) {
    rmSync(tmp, { force: true });
    throw new UserError(`--target cpu: cannot build the machine probe (g++ with OpenBLAS): ${build.error?.message ?? build.stderr.trim()}`);
  }
  renameSync(tmp, binary); // atomic, as the cached measurement
  return binary;
}
