// Emits a Plan as CUDA C++ (plan.cu.njk, beside this file): the same parameter table, programs and
// PlanDesc as the CPU backend's plan.cpp, with each node calling the CUDA runtime's launch wrappers.
import type { Plan } from "../../../plan/plan.ts";
import { renderPlan } from "../cpu/emit.ts";
import { type Precision } from "../../../plan/plan.ts";
import { cudaKernelCalls } from "./kernel_calls.ts";

export function emitCuda(plan: Plan, precision: Precision): { source: string; hash: string } {
  return renderPlan(plan, "cuda/plan.cu.njk", cudaKernelCalls(precision), { precision });
}
