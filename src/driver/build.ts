// Emits a plan's C++ (or CUDA C++) and builds it (cached by content hash), telling the user when a real
// compile runs.
import { emitCpp } from "../../codegen/cpu/emit.ts";
import { emitCuda } from "../../codegen/cuda/emit.ts";
import { type BuildResult, MpiMissingError, buildPlan } from "../../codegen/build.ts";
import { UserError } from "../../base/errors.ts";
import type { Plan } from "./compile.ts";

export async function buildCompiledPlan(plan: Plan, log: (line: string) => void): Promise<BuildResult & { source: string }> {
  const backend = plan.options.backend ?? "cpu";
  const { source } = backend === "cuda" ? emitCuda(plan, plan.options.precision ?? "bf16") : emitCpp(plan);
  const started = performance.now();
  const result = await buildPlan({
    planCpp: source, backend, mpi: (plan.options.tp ?? 1) > 1, emulate: plan.options.emulate === true,
  }).catch((e: unknown) => {
    throw e instanceof MpiMissingError ? new UserError(`--tp ${plan.options.tp}: ${e.message}`) : e;
  });
  if (!result.cached) log(`built plan ${result.hash.slice(0, 12)} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return { ...result, source };
}
