// The CPU backend: plan.cpp against runtime/kernels.h, built by g++ with OpenBLAS and OpenMP.
import { BACKENDS } from "../../../plan/backends.ts";
import { GXX } from "../../toolchain.ts";
import type { CodegenBackend } from "../backend.ts";
import { emitCpp } from "./emit.ts";

export const cpuBackend: CodegenBackend = {
  caps: BACKENDS.cpu,
  emit: (plan) => emitCpp(plan),
  toolchain: () => GXX,
  runtimeSources: async (cpuSources) => [...cpuSources],
};
