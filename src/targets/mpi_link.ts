// The `cpu` target's network term: the MPI link between the ranks of a job on this machine, measured by
// src/targets/mpi_probe.cpp under mpirun, as the ranks of a --tp or --dp job run. Cached beside the
// machine's other measurements, keyed by CPU model, rank count and the probe's source, so it runs once.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { UserError } from "../../base/errors.ts";
import { cacheDir } from "../../base/paths.ts";
import type { NetworkLink } from "../../ir/cost_model.ts";
import { tempPathFor, writeFileAtomic } from "../util/atomic_write.ts";
import { mpirunArgs } from "../util/mpirun.ts";

const PROBE_SOURCE = path.join(path.dirname(fileURLToPath(import.meta.url)), "mpi_probe.cpp");
const REPEATS = 30;

/** What mpi_probe prints: [bytes, seconds] of one all-reduce, the smaller first. */
export interface MpiProbeResult {
  ranks: number;
  points: [bytes: number, seconds: number][];
}

/** The link between `ranks` ranks, as measured. */
export function measuredMpiLink(ranks: number, cpuModel: string): NetworkLink {
  const source = readFileSync(PROBE_SOURCE, "utf8");
  const key = createHash("sha256").update(`${cpuModel}\n${ranks}\n${source}`).digest("hex").slice(0, 16);
  const dir = path.join(cacheDir(), "targets");
  const cached = path.join(dir, `mpi-${key}.json`);
  if (existsSync(cached)) {
    return fitRing(JSON.parse(readFileSync(cached, "utf8")) as MpiProbeResult);
  }
  const probe = runProbe(probeBinary(dir, key), ranks);
  const link = fitRing(probe); // kept only when it fits, so that a rerun measures again
  writeFileAtomic(cached, JSON.stringify(probe) + "\n");
  return link;
}

/**
 * The link the cost model's ring formula gives these times with: an all-reduce of S bytes over p ranks
 * takes 2 ((p-1)/p S / bandwidth + (p-1) latency), a line in S through the two measured points.
 */
export function fitRing(probe: MpiProbeResult): NetworkLink {
  const p = probe.ranks;
  const [[smallBytes, smallSeconds], [largeBytes, largeSeconds]] = probe.points;
  const secondsPerByte = (largeSeconds - smallSeconds) / (largeBytes - smallBytes);
  const fixedSeconds = smallSeconds - secondsPerByte * smallBytes;
  if (!(p > 1) || !(secondsPerByte > 0) || !(fixedSeconds > 0))
    throw new UserError(
      `--target cpu: the MPI link probe's times do not fit a link (${p} ranks: ${JSON.stringify(probe.points)}); ` +
        "rerun when the machine is quieter",
    );
  return {
    bandwidth: (2 * ((p - 1) / p)) / secondsPerByte,
    latency: fixedSeconds / (2 * (p - 1)),
  };
}

function runProbe(binary: string, ranks: number): MpiProbeResult {
  const run = spawnSync("mpirun", mpirunArgs(ranks, [binary, String(REPEATS)]), { encoding: "utf8" });
  if (run.error || run.status !== 0)
    throw new UserError(`--target cpu: the MPI link probe (mpirun, ${ranks} ranks) failed: ${run.error?.message ?? run.stderr.trim()}`);
  return JSON.parse(run.stdout.trim().split("\n").at(-1)!) as MpiProbeResult;
}

/** The probe, built once per key with MPI's wrapper compiler. */
function probeBinary(dir: string, key: string): string {
  const binary = path.join(dir, `mpi_probe-${key}`);
  if (existsSync(binary)) return binary;
  mkdirSync(dir, { recursive: true });
  const tmp = tempPathFor(binary);
  const build = spawnSync("mpicxx", ["-O2", "-std=c++17", PROBE_SOURCE, "-o", tmp], { encoding: "utf8" });
  if (build.error || build.status !== 0) {
    rmSync(tmp, { force: true });
    throw new UserError(
      `--target cpu: cannot build the MPI link probe (mpicxx; npm run setup installs OpenMPI): ${build.error?.message ?? build.stderr.trim()}`,
    );
  }
  renameSync(tmp, binary);
  return binary;
}
