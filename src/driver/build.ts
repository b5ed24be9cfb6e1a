// Emits a plan's C++ (or CUDA C++) and builds it (cached by content hash), telling the user when a real
// compile runs.
import { codegenBackend } from "../../codegen/backends/index.ts";
import { type BuildResult, MpiMissingError, buildPlan } from "../../codegen/build.ts";
import { SettingError } from "../../base/errors.ts";
import { type Plan, worldSize } from "../../plan/plan.ts";

export async function buildCompiledPlan(plan: Plan, log: (line: string) => void): Promise<BuildResult & { source: string }> {
  const { backend, precision, ranks, dp, emulate } = plan.decisions;
  const { source } = codegenBackend(backend).emit(plan, precision);
  const started = performance.now();
  const result = await buildPlan({
    planCpp: source,
    backend,
    mpi: worldSize(plan.decisions) > 1,
    emulate,
  }).catch((e: unknown) => {
    throw e instanceof MpiMissingError
      ? new SettingError((name) => (dp > 1 ? `${name("dp")} ${dp}` : `${name("tp")} ${ranks}`) + `: ${e.message}`)
      : e;
  });
  if (!result.cached) log(`built plan ${result.hash.slice(0, 12)} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return { ...result, source };
}
