// The CUDA backend: plan.cu against runtime/cuda/cuda_kernels.h, built by nvcc for the GPU, or by g++
// for the emulated CUDA target (--emulate), which runs the same sources on the CPU.
import { BACKENDS } from "../../../plan/backends.ts";
import { listFiles, runtimeDir } from "../../toolchain.ts";
import type { CodegenBackend } from "../backend.ts";
import { emitCuda } from "./emit.ts";
import { EMULATED, NVCC, emulationSources, sharedRuntimeSources } from "./toolchain.ts";
import { join } from "node:path";

export const cudaBackend: CodegenBackend = {
  caps: BACKENDS.cuda,
  emit: (plan, precision = plan.decisions.precision) => emitCuda(plan, precision),
  toolchain: (emulate) => (emulate ? EMULATED : NVCC),
  runtimeSources: async (cpuSources, { emulate, mpi }) => [
    ...sharedRuntimeSources(cpuSources),
    ...(await listFiles(join(runtimeDir, "cuda"), ".cu")),
    ...(emulate ? await emulationSources(listFiles, mpi) : []),
  ],
};
