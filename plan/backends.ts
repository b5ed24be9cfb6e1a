// What each backend can do, as data: the planner, the CLI's checks and the driver read these
// capabilities instead of comparing backend names. The code that generates and builds a backend's
// program is its codegen object (codegen/backends/), which carries the same description.
import { CPU_DEFAULTS, H100_DEFAULTS, type Machine } from "../ir/cost_model.ts";
import type { Precision } from "./plan.ts";

/** The backends, by the name --backend takes. */
export const BACKEND_NAMES = ["cpu", "cuda"] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

export interface BackendCaps {
  readonly name: BackendName;
  /** How messages name it: "the CPU backend". */
  readonly title: string;
  /** How matmuls multiply when --precision is not given. */
  readonly defaultPrecision: Precision;
  /** The precisions --precision may choose; a backend with one computes in it and takes no --precision. */
  readonly precisions: readonly Precision[];
  /** It has an emulated target (--emulate: its code built and run on the CPU). */
  readonly emulation: boolean;
  /** The hardware its cost model predicts for when no --target is given. */
  readonly defaultMachine: Machine;
  /** The generated source's file name. */
  readonly planFile: string;
  /**
   * The profiled warm-up can time its nodes. It times them on the host clock, which on a GPU sees the
   * launches, not the kernels.
   */
  readonly profiling: boolean;
}

export const BACKENDS: Readonly<Record<BackendName, BackendCaps>> = {
  cpu: {
    name: "cpu",
    title: "the CPU backend",
    defaultPrecision: "fp32",
    precisions: ["fp32"],
    emulation: false,
    defaultMachine: CPU_DEFAULTS,
    planFile: "plan.cpp",
    profiling: true,
  },
  cuda: {
    name: "cuda",
    title: "the CUDA backend",
    defaultPrecision: "bf16",
    precisions: ["bf16", "fp32"],
    emulation: true,
    defaultMachine: H100_DEFAULTS,
    planFile: "plan.cu",
    profiling: false,
  },
};

export function backendCaps(name: BackendName): BackendCaps {
  const caps = BACKENDS[name];
  if (!caps) throw new Error(`internal: unknown backend ${name}`);
  return caps;
}

/** A backend whose precision --precision chooses. */
export function choosesPrecision(caps: BackendCaps): boolean {
  return caps.precisions.length > 1;
}

/** The names of the backends that have a capability, for messages: "cuda", or "cpu or cuda". */
export function backendsWhere(has: (caps: BackendCaps) => boolean): string {
  return BACKEND_NAMES.filter((n) => has(BACKENDS[n])).join(" or ");
}

/** The precision a plan computes in: the one asked for, where the backend lets it be chosen. */
export function resolvePrecision(caps: BackendCaps, asked: Precision | undefined): Precision {
  return asked !== undefined && choosesPrecision(caps) && caps.precisions.includes(asked) ? asked : caps.defaultPrecision;
}
