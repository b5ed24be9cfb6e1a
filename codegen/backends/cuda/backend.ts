// The CUDA backend: plan.cu against runtime/cuda/cuda_kernels.h, built by nvcc for the GPU, or by g++
// for the emulated CUDA target (--emulate), which runs the same sources on the CPU.
import { join } from "node:path";
import { BACKENDS } from "../../../plan/backends.ts";
import { listFiles, runtimeDir } from "../../toolchain.ts";
import type { CodegenBackend } from "../backend.ts";
import { emitCuda } from "./emit.ts";
import { EMULATED, NVCC, emulationSources } from "./toolchain.ts";

export const cudaBackend: CodegenBackend = {
  caps: BACKENDS.cuda,
  emit: (plan, precision = plan.decisions.precision) => emitCuda(plan, precision),
  toolchain: (emulate) => (emulate ? EMULATED : NVCC),
  runtimeSources: async ({ emulate, mpi }) => [
    // AdamW on offloaded chunks runs the CPU backend's kernel on the host.
    join(runtimeDir, "cpu", "kernels_adamw.cpp"),
    ...(await listFiles(join(runtimeDir, "cuda"), ".cu")),
    ...(emulate ? await emulationSources(listFiles, mpi) : []),
  ],
};
