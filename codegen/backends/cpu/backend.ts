// The CPU backend: plan.cpp against runtime/cpu/kernels.h, built by g++ with OpenBLAS and OpenMP.
import { join } from "node:path";
import { BACKENDS } from "../../../plan/backends.ts";
import { GXX, listFiles, runtimeDir } from "../../toolchain.ts";
import type { CodegenBackend } from "../backend.ts";
import { emitCpp } from "./emit.ts";

export const cpuBackend: CodegenBackend = {
  caps: BACKENDS.cpu,
  emit: (plan) => emitCpp(plan),
  toolchain: () => GXX,
  // The kernels (OpenBLAS, OpenMP loops), the CPU device and its transfer glue.
  runtimeSources: () => listFiles(join(runtimeDir, "cpu"), ".cpp"),
};
