// The pipeline from a model definition to a Plan: trace the training and inference programs, run the
// passes in order, and plan memory. Each pass's output is kept so `stow ir --after PASS` can show it.
import type { Graph } from "../../ir/types.ts";
import { autodiff } from "../../ir/passes/autodiff.ts";
import { adamwPass } from "../../ir/passes/adamw.ts";
import { type MemoryPlan, type PersistentLayout, persistentLayout, planMemory } from "../../ir/passes/memory_plan.ts";
import { alignUp } from "../../ir/passes/arena_plan.ts";
import type { ModelConfig, ModelDefinition } from "../dsl/model.ts";
import { buildModel, traceProgram } from "./trace_program.ts";

export interface CompileOptions {
  batch: number;
  seq: number;
  threads: number;
  /** Compile the global gradient norm (clipping and the grad_norm metric). */
  clip: boolean;
}

export interface CompiledProgram {
  graph: Graph;
  memory: MemoryPlan;
  batch: number;
  seq: number;
}

export interface Plan {
  modelPath: string;
  config: ModelConfig;
  options: CompileOptions;
  persistent: PersistentLayout;
  train: CompiledProgram;
  infer: CompiledProgram;
  /** Persistent region plus the larger dynamic region of the two programs. */
  arenaBytes: number;
  /** The training graph after each pass, for `stow ir --after`. */
  stages: { name: string; graph: Graph }[];
}

export const PASSES = ["trace", "autodiff", "adamw"] as const;

export function compilePlan(def: ModelDefinition, modelPath: string, config: ModelConfig, opts: CompileOptions): Plan {
  const model = buildModel(def, config);
  const stages: { name: string; graph: Graph }[] = [];
  let g = traceProgram(model, config, { batch: opts.batch, seq: opts.seq, kind: "train" });
  stages.push({ name: "trace", graph: g });
  g = autodiff(g);
  stages.push({ name: "autodiff", graph: g });
  g = adamwPass(g, { clip: opts.clip });
  stages.push({ name: "adamw", graph: g });

  const persistent = persistentLayout(g, true);
  const train = { graph: g, memory: planMemory(g, persistent, opts.threads), batch: opts.batch, seq: opts.seq };
  const inferGraph = traceProgram(model, config, { batch: 1, seq: config.seq, kind: "infer" });
  const infer = { graph: inferGraph, memory: planMemory(inferGraph, persistent, opts.threads), batch: 1, seq: config.seq };
  const arenaBytes = persistent.bytes + Math.max(train.memory.dynamicBytes, infer.memory.dynamicBytes);
  return { modelPath, config, options: opts, persistent, train, infer, arenaBytes: alignUp(arenaBytes), stages };
}
