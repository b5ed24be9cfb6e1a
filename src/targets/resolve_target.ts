// --target NAME|FILE: a named GPU profile, `cpu` (this machine, measured), or a JSON profile file.
import { UserError } from "../../base/errors.ts";
import { cpuTarget } from "./cpu_target.ts";
import { GPU_TARGETS } from "./gpus.ts";
import { readTargetFile } from "./json_target.ts";
import type { Target } from "./target.ts";

export const TARGET_NAMES = ["cpu", ...Object.keys(GPU_TARGETS)];

/**
 * How the `cpu` target is measured (other targets state their own figures): the threads a rank runs
 * kernels with, the folder of the disk tier, and the ranks of the job, whose MPI link it measures.
 */
export interface CpuTargetSpec {
  threads: number;
  diskPath?: string;
  ranks?: number;
}

export function resolveTarget(spec: string, cpu: CpuTargetSpec): Target {
  if (spec === "cpu") return cpuTarget(cpu);
  if (Object.hasOwn(GPU_TARGETS, spec)) return { name: spec, ...GPU_TARGETS[spec] };
  if (spec.endsWith(".json")) return readTargetFile(spec);
  throw new UserError(`--target: unknown target "${spec}"; the targets are ${TARGET_NAMES.join(", ")}, or a JSON profile file (*.json)`);
}
