// Environment the plan library's dependencies read once, when they are loaded: so the CLI sets it
// before any plan library (with OpenBLAS and libgomp) is loaded. A value the user set is left alone.
// runtime/core/train_main.cpp makes the same choices for the standalone binary.
//
// - OPENBLAS_CORETYPE: Debian's OpenBLAS (0.3.21) does not recognise recent Intel cores and falls back to
//   its generic "Prescott" SSE3 kernels, about 5x slower here than its AVX-512 ones (measured: 29 vs
//   148 GFLOP/s for a 1024^3 sgemm on two cores). Pick the kernel family from the CPU's flags.
// - OMP_WAIT_POLICY=passive: idle OpenMP threads sleep instead of spinning, so they do not steal the
//   cores from OpenBLAS's own threads between kernels (measured on gpt2 mini, batch 8 x 128, two
//   threads: 1.9k tokens/s passive vs 1.25k active; losses bitwise the same).
import { readFileSync } from "node:fs";

export function setRuntimeEnv(env: NodeJS.ProcessEnv = process.env): void {
  env.OMP_WAIT_POLICY ??= "passive";
  if (env.OPENBLAS_CORETYPE) return;
  let flags = "";
  try {
    flags = /^flags\s*:(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "";
  } catch {
    return; // not Linux: let OpenBLAS decide
  }
  const has = (f: string) => flags.split(" ").includes(f);
  if (has("avx512f") && has("avx512bw") && has("avx512vl")) env.OPENBLAS_CORETYPE = "SkylakeX";
  else if (has("avx2") && has("fma")) env.OPENBLAS_CORETYPE = "Haswell";
}
