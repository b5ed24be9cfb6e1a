// The `cpu` target: this machine, measured (src/targets/cpu_probe.c) with the thread count the plans run
// with, and cached under the build cache keyed by CPU model, threads and the probe's source, so the
// probe runs once. Device memory is the machine's memory: on the CPU backend the arena is ordinary RAM.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { UserError } from "../cli/errors.ts";
import { cacheDir } from "../driver/paths.ts";
import type { Target } from "./target.ts";

const PROBE_SOURCE = path.join(path.dirname(fileURLToPath(import.meta.url)), "cpu_probe.c");
/**
 * The product timed for matmulFlops: one MLP product of a GPT-2-small-sized step (1024 tokens, width 768
 * to 3072). Smaller products run well below the large-square peak on this backend, and a step is many
 * products of this order, so a 2048^3 peak would predict steps too fast.
 */
const SGEMM_SHAPE = [1024, 768, 3072] as const;
const REPEATS = 5;

interface ProbeResult {
  threads: number;
  sgemm_shape: number[];
  sgemm_flops: number;
  stream_bytes: number;
  memcpy_bytes: number;
  adamw_bytes: number;
}

export interface CpuMeasureOptions {
  threads: number;
  /** Measure again even when a cached measurement exists (and replace it). */
  fresh?: boolean;
  /** The environment the probe runs in (the OpenBLAS core and OpenMP settings the plans get). */
  env?: NodeJS.ProcessEnv;
}

export function cpuModel(): string {
  try {
    return /^model name\s*:\s*(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? os.cpus()[0]?.model ?? "unknown";
  } catch {
    return os.cpus()[0]?.model ?? "unknown";
  }
}

export function cpuTarget(opts: CpuMeasureOptions): Target {
  const source = readFileSync(PROBE_SOURCE, "utf8");
  const key = createHash("sha256").update(`${cpuModel()}\n${opts.threads}\n${SGEMM_SHAPE.join("x")}\n${source}`).digest("hex").slice(0, 16);
  const dir = path.join(cacheDir(), "targets");
  const cached = path.join(dir, `cpu-${key}.json`);
  let probe: ProbeResult;
  if (!opts.fresh && existsSync(cached)) probe = JSON.parse(readFileSync(cached, "utf8")) as ProbeResult;
  else {
    probe = runProbe(dir, key, opts);
    const tmp = `${cached}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(probe) + "\n");
    renameSync(tmp, cached); // atomic: a concurrent reader sees the old file or the whole new one
  }
  return {
    name: "cpu",
    description: `this machine: ${cpuModel()}, ${opts.threads} threads (measured; sgemm ${SGEMM_SHAPE.join("x")})`,
    deviceMemory: os.totalmem(),
    machine: {
      matmulFlops: probe.sgemm_flops, memoryBandwidth: probe.stream_bytes,
      linkBandwidth: probe.memcpy_bytes, hostBandwidth: probe.adamw_bytes,
    },
  };
}

function runProbe(dir: string, key: string, opts: CpuMeasureOptions): ProbeResult {
  mkdirSync(dir, { recursive: true });
  const binary = path.join(dir, `cpu_probe-${key}-${process.pid}`);
  const build = spawnSync("gcc", ["-O3", "-march=native", "-fno-math-errno", "-fopenmp", PROBE_SOURCE, "-o", binary, "-lopenblas", "-lm"],
    { encoding: "utf8" });
  if (build.error || build.status !== 0)
    throw new UserError(`--target cpu: cannot build the machine probe (gcc with OpenBLAS): ${build.error?.message ?? build.stderr.trim()}`);
  const run = spawnSync(binary, [String(opts.threads), ...SGEMM_SHAPE.map(String), String(REPEATS)],
    { encoding: "utf8", env: opts.env ?? process.env });
  if (run.error || run.status !== 0)
    throw new UserError(`--target cpu: the machine probe failed: ${run.error?.message ?? run.stderr.trim()}`);
  return JSON.parse(run.stdout.trim().split("\n").at(-1)!) as ProbeResult;
}
