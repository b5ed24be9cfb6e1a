// The targets' probes are small C++ programs, built once into the cache and kept under a key that names
// their sources, so a measurement (or a fresh one) costs no build.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import path from "node:path";
import { UserError } from "../../base/errors.ts";
import { tempPathFor } from "../util/atomic_write.ts";

export interface ProbeBuild {
  /** The binary's path in the cache. */
  binary: string;
  /** The compiler, and its arguments before `-o OUTPUT`. */
  compiler: string;
  args: string[];
  /** What failed, for the error: "the machine probe (g++ with OpenBLAS)". */
  what: string;
}

/** The probe's binary, built first if the cache does not hold it; written elsewhere and renamed into place. */
export function probeBinary(build: ProbeBuild): string {
  if (existsSync(build.binary)) return build.binary;
  mkdirSync(path.dirname(build.binary), { recursive: true });
  const tmp = tempPathFor(build.binary);
  const run = spawnSync(build.compiler, [...build.args, "-o", tmp], { encoding: "utf8" });
  if (run.error || run.status !== 0) {
    rmSync(tmp, { force: true });
    throw new UserError(`--target cpu: cannot build ${build.what}: ${run.error?.message ?? run.stderr.trim()}`);
  }
  renameSync(tmp, build.binary);
  return build.binary;
}
