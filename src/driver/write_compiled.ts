// `stow compile -o DIR`: the generated C++, the plan as JSON, and the built library and standalone
// train binary, copied out of the build cache so the directory stands on its own.
import { copyFileSync, mkdirSync } from "node:fs";
import path from "node:path";
import { buildCompiledPlan } from "./build.ts";
import type { Plan } from "../../plan/plan.ts";
import { taskInputsOf } from "../../ir/types.ts";
import { backendCaps } from "../../plan/backends.ts";
import { planJson } from "./plan_report.ts";
import { writeFileAtomic } from "../util/atomic_write.ts";

export async function writeCompiled(plan: Plan, outDir: string, log: (s: string) => void): Promise<void> {
  mkdirSync(outDir, { recursive: true });
  const built = await buildCompiledPlan(plan, log);
  const planFile = backendCaps(plan.decisions.backend).planFile;
  writeFileAtomic(path.join(outDir, planFile), built.source);
  writeFileAtomic(path.join(outDir, "plan.json"), JSON.stringify(planJson(plan), null, 1) + "\n");
  copyFileSync(built.libPath, path.join(outDir, "libplan.so"));
  copyFileSync(built.trainBinPath, path.join(outDir, "train"));
  // A task model's train binary reads a step file, which stow train writes from the model's data loader.
  const data = taskInputsOf(plan.train.graph).length > 0 ? "STEPS.bin, a step file as stow train writes" : "TOKENS.bin";
  log(`wrote ${outDir}/${planFile}, plan.json, libplan.so and train (run: ${outDir}/train --data ${data})`);
}
