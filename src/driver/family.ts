// A model's family, as `stow capacity` searches it: members numbered 1, 2, 3, ... in order of size.
// With a scale rule (src/dsl/model.ts) member k is the base preset with the rule's field set to k; without
// one, member k is the k-th preset by parameter count. --set overrides apply to every member.
import { UserError } from "../../base/errors.ts";
import type { LoadedModel } from "../load/load_model.ts";
import { numel } from "../../ir/types.ts";
import { type ModelChoice, type Resolved, resolveModel } from "./resolve.ts";
import { buildModel } from "./trace_program.ts";
import { TraceError } from "../dsl/trace.ts";
import { ModuleBuffer } from "../dsl/parameter.ts";
import { describeTraceError } from "./prepare.ts";

export interface Family {
  /** How the family grows, in words, for reports. */
  rule: string;
  /** The config field that grows; undefined when the family is the presets. */
  field?: string;
  /** The preset whose other fields the members take (`--preset` of the train command); undefined for the presets family. */
  preset?: string;
  /** Members are 1..size (Infinity when a field grows without a bound). */
  size: number;
  /** Member k: its config and program shape. */
  member(k: number): Resolved;
  /** Member k's name in reports: "layers=85" or "preset 1.5B". */
  label(k: number): string;
  /** The model flags that choose member k (besides the user's --set), for the train command capacity prints. */
  flags(k: number): string[];
}

export function resolveFamily(loaded: LoadedModel, choice: ModelChoice): Family {
  const m = loaded.module;
  const set = choice.set ?? [];
  if (m.scale) {
    const field = m.scale.field;
    if (set.some((s) => s.split("=")[0].trim() === field))
      throw new UserError(`--set ${field}: capacity chooses ${field} itself (the model's scale rule grows it)`);
    const preset = choice.preset ?? m.scale.preset ?? m.defaultPreset;
    const member = (k: number) => resolveModel(loaded, { ...choice, preset, set: [...set, `${field}=${k}`] });
    const fixed = Object.entries(member(1).config)
      .filter(([k]) => k !== field)
      .map(([k, v]) => `${k}=${v}`)
      .join(" ");
    return {
      rule: `${field} grown, the other fields as preset ${preset} (${fixed})`,
      field,
      preset,
      size: Infinity,
      member,
      label: (k) => `${field}=${k}`,
      flags: (k) => ["--preset", preset, "--set", `${field}=${k}`, ...(choice.seq !== undefined ? ["--seq", `${choice.seq}`] : [])],
    };
  }
  if (choice.preset !== undefined)
    throw new UserError("--preset: this model declares no scale rule, so its family is all of its presets, in order of size");
  const bySize = Object.keys(m.presets)
    .map((name) => ({ name, params: paramCount(resolveModel(loaded, { ...choice, preset: name })) }))
    .sort((a, b) => a.params - b.params);
  const member = (k: number) => resolveModel(loaded, { ...choice, preset: bySize[k - 1].name });
  return {
    rule: `the presets in order of size (${bySize.map((p) => p.name).join(", ")})`,
    size: bySize.length,
    member,
    label: (k) => `preset ${bySize[k - 1].name}`,
    flags: (k) => ["--preset", bySize[k - 1].name, ...(choice.seq !== undefined ? ["--seq", `${choice.seq}`] : [])],
  };
}

/**
 * The widths `stow capacity` weighs: the family itself and, when the model has a scale rule and no
 * --preset fixes the width, the same growth from each preset that adds more parameters a member (a wider
 * layer) and whose context holds the family's sequence. Every width trains the family's sequence length
 * (as if --seq were given), so each step is the same global batch of tokens. Narrower presets are left
 * out: a parameter of a narrower layer comes with more activations, which bind first at large sizes.
 */
export function familyWidths(loaded: LoadedModel, choice: ModelChoice): Family[] {
  const base = resolveFamily(loaded, choice);
  if (base.preset === undefined || choice.preset !== undefined) return [base];
  const perMember = (f: Family) => paramCount(f.member(2)) - paramCount(f.member(1));
  const seq = base.member(1).seq;
  const least = perMember(base);
  const wider = Object.entries(loaded.module.presets)
    .filter(([name, config]) => name !== base.preset && config.seq >= seq)
    .map(([name]) => resolveFamily(loaded, { ...choice, preset: name, seq }))
    .map((f) => ({ f, step: perMember(f) }))
    .filter(({ step }) => step > least)
    .sort((a, b) => a.step - b.step)
    .map(({ f }) => f);
  return [base, ...wider];
}

/** Parameters of a member, from building its modules (no tracing, so it is cheap at any size). */
export function paramCount(r: Resolved): number {
  try {
    return buildModel(r.definition, r.config)
      .namedParameters()
      .filter(([, p]) => !(p instanceof ModuleBuffer))
      .reduce((s, [, p]) => s + numel(p.shape), 0);
  } catch (e) {
    if (e instanceof TraceError) throw new UserError(describeTraceError(e));
    throw e;
  }
}
