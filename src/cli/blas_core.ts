// Debian's OpenBLAS (0.3.21) does not recognise recent Intel cores and falls back to its generic
// "Prescott" SSE3 kernels, about 5x slower here than its AVX-512 ones (measured: 29 vs 148 GFLOP/s for
// a 1024^3 sgemm on two cores). OpenBLAS reads OPENBLAS_CORETYPE when it is loaded, so the CLI picks
// the kernel family from the CPU's flags before any plan library (and with it OpenBLAS) is loaded.
// A value the user set is left alone. runtime/train_main.cpp does the same for the standalone binary.
import { readFileSync } from "node:fs";

export function chooseBlasCore(env: NodeJS.ProcessEnv = process.env): void {
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
