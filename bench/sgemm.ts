// The machine's limit: builds bench/sgemm_peak.c against OpenBLAS and runs it with the benchmark's env,
// so it uses the same OpenBLAS kernels and thread count as the training runs.
import path from "node:path";
import { runChild, lastJsonLine } from "./child.ts";

export interface SgemmPeak {
  n: number;
  threads: number;
  repeats: number;
  median_gflops: number;
  best_gflops: number;
  core: string; // openblas_get_corename()
}

export function measureSgemmPeak(benchDir: string, workDir: string, threads: number, env: NodeJS.ProcessEnv): SgemmPeak {
  const binary = path.join(workDir, "sgemm_peak");
  runChild("sgemm peak: build", "gcc", ["-O2", path.join(benchDir, "sgemm_peak.c"), "-o", binary, "-lopenblas"], env);
  const stdout = runChild("sgemm peak", binary, ["2048", String(threads), "3", "9"], env);
  return lastJsonLine<SgemmPeak>("sgemm peak", stdout);
}
