import { realpathSync } from "node:fs";
import { stat } from "node:fs/promises";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { UserError } from "../../base/errors.ts";
import type { ModelConfig, ModelDefinition, ScaleRule } from "../dsl/model.ts";
import { registerModelFile } from "../dsl/trace.ts";
import { displayPath, typecheckModel } from "./typecheck.ts";

/**
 * What a model file provides (see src/dsl/model.ts): its default export (as defineModel makes it), a named
 * export `model`, or named exports `presets`, `defaultPreset` and `build` of the module itself. Loading
 * checks the shape; the config fields (vocab, seq) are checked where the config is resolved.
 */
export type ModelModule = Omit<ModelDefinition, "kind">;

export interface LoadedModel {
  /** Absolute path of the model file. */
  path: string;
  module: ModelModule;
}

/** Checks, imports and validates a model file; every failure is a UserError that points into the file. */
export async function loadModel(path: string): Promise<LoadedModel> {
  const absolutePath = resolve(path);
  await checkIsFile(path, absolutePath);
  await typecheckModel(absolutePath);
  // Errors and node locations are the model file's lines, not those of helpers it calls (trace.ts).
  registerModelFile(absolutePath, realpathSync(absolutePath));
  const namespace = await importModel(absolutePath);
  return { path: absolutePath, module: validateModel(absolutePath, namespace) };
}

async function checkIsFile(path: string, absolutePath: string): Promise<void> {
  let isFile: boolean;
  try {
    isFile = (await stat(absolutePath)).isFile();
  } catch {
    throw new UserError(`model file not found: ${path}`);
  }
  if (!isFile) throw new UserError(`${path} is not a file; expected a model file such as samples/gpt2.ts`);
}

async function importModel(absolutePath: string): Promise<Record<string, unknown>> {
  try {
    return await import(pathToFileURL(absolutePath).href);
  } catch (error) {
    throw new UserError(describeImportError(absolutePath, error));
  }
}

/**
 * `path:line:col: message` for an exception thrown while the model file's top level ran, the location
 * being the innermost stack frame inside the model file (a DSL function it called may have thrown). With
 * source maps on (bin/stow.js turns them on; tsx provides them), line and column are those of the .ts file.
 */
export function describeImportError(absolutePath: string, error: unknown): string {
  const message = error instanceof Error ? describeError(error) : String(error);
  const stack = error instanceof Error ? (error.stack ?? "") : "";
  const location = findFrameIn(stack, absolutePath);
  if (location) return `${displayPath(absolutePath)}:${location}: ${message}`;
  return `${displayPath(absolutePath)}: failed to load: ${message}`;
}

function describeError(error: Error): string {
  // The class of a built-in error says what kind of mistake it is ("TypeError: x is not a function").
  const generic = error.name === "Error" || error.name === "UserError";
  return generic ? error.message : `${error.name}: ${error.message}`;
}

/** "line:col" of the first stack frame in the file, written either as a file URL or as a plain path. */
function findFrameIn(stack: string, absolutePath: string): string | undefined {
  const names = [pathToFileURL(absolutePath).href, absolutePath].map(escapeRegExp).join("|");
  const frame = new RegExp(`(?:${names})(?:\\?[^:\\s]*)?:(\\d+):(\\d+)`);
  for (const line of stack.split("\n")) {
    if (!line.trimStart().startsWith("at ")) continue;
    const match = frame.exec(line);
    if (match) return `${match[1]}:${match[2]}`;
  }
  return undefined;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function validateModel(absolutePath: string, namespace: Record<string, unknown>): ModelModule {
  const where = displayPath(absolutePath);
  const [candidate, what] =
    namespace.default !== undefined
      ? [namespace.default, "the default export"]
      : namespace.model !== undefined
        ? [namespace.model, "the export `model`"]
        : [namespace, "the module"];
  if (typeof candidate !== "object" || candidate === null) {
    throw new UserError(`${where}: ${what} must be an object with presets, defaultPreset and build`);
  }
  const model = candidate as Record<string, unknown>;

  const problems: string[] = [];
  if (model.presets === undefined) problems.push("`presets` (an object of named configs) is missing");
  else if (!isConfigTable(model.presets)) problems.push("`presets` must be an object whose values are config objects");
  if (model.defaultPreset === undefined) problems.push("`defaultPreset` (the name of a preset) is missing");
  else if (typeof model.defaultPreset !== "string") problems.push("`defaultPreset` must be a string");
  if (model.build === undefined) problems.push("`build` (a function from a config to the model) is missing");
  else if (typeof model.build !== "function") problems.push("`build` must be a function");
  if (model.inputs !== undefined && typeof model.inputs !== "function")
    problems.push("`inputs` must be a function from a config to the named inputs");
  if (model.data !== undefined && typeof model.data !== "function")
    problems.push("`data` must be a function from a config and a step to its batch");
  if (model.data !== undefined && model.inputs === undefined)
    problems.push("`data` needs `inputs`: a language model reads the token stream of --data");
  if (problems.length > 0) {
    throw new UserError(`${where}: ${what} is not a model:\n  ${problems.join("\n  ")}`);
  }

  const presets = model.presets as Record<string, ModelConfig>;
  const defaultPreset = model.defaultPreset as string;
  if (!Object.hasOwn(presets, defaultPreset)) {
    const names = Object.keys(presets).join(", ") || "(none)";
    throw new UserError(`${where}: defaultPreset "${defaultPreset}" is not one of the presets: ${names}`);
  }
  // Bound, so that a model written as a class or an object literal with `this` inside build still works.
  const build = (model.build as ModelModule["build"]).bind(model);
  const scale = model.scale === undefined ? undefined : validateScale(where, model.scale, presets, defaultPreset);
  const task = model.inputs === undefined ? {} : { inputs: model.inputs as ModelModule["inputs"], data: model.data as ModelModule["data"] };
  const loc = model.loc as ModelModule["loc"];
  return { presets, defaultPreset, build, ...(scale && { scale }), ...task, ...(loc && { loc }) };
}

/** `scale: { field, preset? }`: the preset exists and the field is one of its integer fields. */
function validateScale(where: string, value: unknown, presets: Record<string, ModelConfig>, defaultPreset: string): ScaleRule {
  if (typeof value !== "object" || value === null || typeof (value as ScaleRule).field !== "string")
    throw new UserError(`${where}: \`scale\` must be an object { field, preset? } naming the config field that grows`);
  const rule = value as ScaleRule;
  if (rule.preset !== undefined && !Object.hasOwn(presets, rule.preset))
    throw new UserError(`${where}: scale.preset "${rule.preset}" is not one of the presets: ${Object.keys(presets).join(", ")}`);
  const base = presets[rule.preset ?? defaultPreset];
  if (!Number.isInteger(base[rule.field]))
    throw new UserError(
      `${where}: scale.field "${rule.field}" is not an integer field of the config; it has: ${Object.keys(base).join(", ")}`,
    );
  return { field: rule.field, ...(rule.preset !== undefined && { preset: rule.preset }) };
}

function isConfigTable(value: unknown): boolean {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  return Object.values(value).every((config) => typeof config === "object" && config !== null);
}
