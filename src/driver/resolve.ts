// Turns command-line model choices (--preset, --set, --batch, --seq) into a config and program shape,
// with every inconsistency reported against the flag that caused it.
import { UserError } from "../../base/errors.ts";
import { parseSetOverrides } from "../cli/options.ts";
import type { LoadedModel } from "../load/load_model.ts";
import type { ModelConfig, ModelDefinition } from "../dsl/model.ts";

export interface ModelChoice {
  preset?: string;
  set?: string[];
  batch?: number;
  seq?: number;
}

export interface Resolved {
  definition: ModelDefinition;
  config: ModelConfig;
  preset: string;
  batch: number;
  seq: number;
}

export const DEFAULT_BATCH = 8;

export function resolveModel(loaded: LoadedModel, choice: ModelChoice): Resolved {
  const m = loaded.module;
  const preset = choice.preset ?? m.defaultPreset;
  const base = m.presets[preset];
  if (!base) throw new UserError(`--preset: unknown preset "${preset}"; this model has: ${Object.keys(m.presets).join(", ")}`);
  const config = parseSetOverrides(choice.set ?? [], { ...base }) as ModelConfig;
  for (const key of ["vocab", "seq"])
    if (!Number.isInteger(config[key])) throw new UserError(`the model's config has no integer "${key}" field`);
  // A task model's inputs take their shapes from the config alone.
  if (m.inputs && choice.seq !== undefined && choice.seq !== config.seq)
    throw new UserError(`--seq: this model declares its own inputs, whose shapes come from its config; use --set seq=${choice.seq}`);
  const seq = choice.seq ?? config.seq;
  if (seq > config.seq)
    throw new UserError(`--seq ${seq} is longer than the model's context (seq=${config.seq}); raise it with --set seq=${seq}`);
  const definition: ModelDefinition = { kind: "stowage-model", ...m };
  return { definition, config, preset, batch: choice.batch ?? DEFAULT_BATCH, seq };
}
