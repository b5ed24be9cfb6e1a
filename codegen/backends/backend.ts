// A backend as code generation sees it: its capabilities (plan/backends.ts), how it writes a plan as
// source, which toolchain builds that source, and which runtime sources it links. One object per backend
// (cpu/, cuda/), looked up by name in index.ts.
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
