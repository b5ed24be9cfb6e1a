// What a model file exports: its config type, named presets, and a builder. The compiler traces the
// built module's forward on symbolic tokens [batch, seq] and expects logits [batch, seq, vocab].
import { Module } from "./nn.ts";
import type { Tensor } from "./tensor.ts";

/** A model config: named integer fields (vocab and seq are required; --set overrides any field). */
export type ModelConfig = { vocab: number; seq: number } & Record<string, number>;

export interface LanguageModel extends Module {
  /** tokens [batch, seq] (i32) -> logits [batch, seq, vocab]. */
  forward(tokens: Tensor): Tensor;
}

/**
 * How the model's family grows, for `stow capacity`: one integer config field (say layers) grows while
 * the other fields stay as in a preset. A model without it is a family of its presets, in order of size.
 */
export interface ScaleRule {
  /** The config field that grows, by steps of 1. */
  readonly field: string;
  /** The preset whose other fields stay fixed (default: the default preset; --preset chooses another). */
  readonly preset?: string;
}

export interface ModelDefinition<C extends ModelConfig = ModelConfig> {
  readonly kind: "stowage-model";
  readonly presets: Readonly<Record<string, C>>;
  readonly defaultPreset: string;
  /** The family's scaling rule (see ScaleRule). */
  readonly scale?: ScaleRule;
  /** Throws (e.g. with `require`) when a config is inconsistent. */
  build(config: C): LanguageModel;
}

export function defineModel<C extends ModelConfig>(def: Omit<ModelDefinition<C>, "kind">): ModelDefinition<C> {
  return { kind: "stowage-model", ...def };
}

/** A config check inside a model's build: fails with the message at the model line. */
export class ConfigError extends Error {}
export function require(condition: boolean, message: string): asserts condition {
  if (!condition) throw new ConfigError(message);
}
