// The backends' code generation, by name (plan/backends.ts lists the names and what each can do).
import type { BackendName } from "../../plan/backends.ts";
import type { CodegenBackend } from "./backend.ts";
import { cpuBackend } from "./cpu/backend.ts";
import { cudaBackend } from "./cuda/backend.ts";

export type { CodegenBackend, EmittedPlan } from "./backend.ts";

const BY_NAME: Readonly<Record<BackendName, CodegenBackend>> = { cpu: cpuBackend, cuda: cudaBackend };

export function codegenBackend(name: BackendName): CodegenBackend {
  const backend = BY_NAME[name];
  if (!backend) throw new Error(`internal: unknown backend ${name}`);
  return backend;
}
