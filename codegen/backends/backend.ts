// A backend as code generation sees it: its capabilities (plan/backends.ts), how it writes a plan as
// source, which toolchain builds that source, and which runtime sources it links. One object per backend
// (cpu/, cuda/), looked up by name in index.ts.
import type { OpName } from "../../ir/ops.ts";
import type { BackendCaps } from "../../plan/backends.ts";
import type { Plan, Precision } from "../../plan/plan.ts";
import type { Toolchain } from "../toolchain.ts";

export interface EmittedPlan {
  source: string;
  /** Names the plan by everything that shapes its code (the runtime reports it; profiles carry it). */
  hash: string;
}

export interface CodegenBackend {
  readonly caps: BackendCaps;
  /** The plan as this backend's source (`caps.planFile`), in the plan's precision unless one is given. */
  emit(plan: Plan, precision?: Precision): EmittedPlan;
  /** What builds that source: for the emulated target when `emulate` (only where caps.emulation). */
  toolchain(emulate: boolean): Toolchain;
  /**
   * The backend's own runtime sources, which a build compiles beside the core (runtime/core/) and the
   * communicator (runtime/comm/) that every backend links.
   */
  runtimeSources(opts: { emulate: boolean; mpi: boolean }): Promise<string[]>;
}

/**
 * The ops no backend runs a kernel for: leaves (their values are placed by the memory plan and filled
 * by the runtime), views of another value's storage, and tp_copy (the identity forward of Megatron's f;
 * its gradient is an all_reduce). Every other op must have a kernel binding in each backend's
 * kernel_calls.ts, which the type checker enforces.
 */
export const NO_KERNEL_OPS = ["param", "opt_state", "input", "reshape", "chunk_view", "tp_copy"] as const satisfies readonly OpName[];
export type NoKernelOp = (typeof NO_KERNEL_OPS)[number];
/** The ops that run a kernel. */
export type KernelOp = Exclude<OpName, NoKernelOp>;

export function hasNoKernel(op: string): op is NoKernelOp {
  return (NO_KERNEL_OPS as readonly string[]).includes(op);
}
