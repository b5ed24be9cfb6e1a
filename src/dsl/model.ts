// What a model file exports: its config type, named presets, and a builder. By default the compiler
// traces the built module's forward on symbolic tokens [batch, seq], expects logits [batch, seq, vocab]
// and adds the next-token cross-entropy. A model that declares `inputs` instead takes those named tensors
// and returns its own scalar loss (a task model: masked-LM, classification, regression); its `data` gives
// each step's batch, or a synthetic batch is drawn from the declared inputs.
import { Module } from "./nn.ts";
import type { Tensor } from "./tensor.ts";
import type { SourceLoc } from "../../ir/types.ts";
import { callerLoc } from "./trace.ts";

/** A model config: named integer fields (vocab and seq are required; --set overrides any field). */
export type ModelConfig = { vocab: number; seq: number } & Record<string, number>;

export interface LanguageModel extends Module {
  /** tokens [batch, seq] (i32) -> logits [batch, seq, vocab]. */
  forward(tokens: Tensor): Tensor;
}

/** A task model: named input tensors -> a scalar loss (float32 []), whatever loss the model computes. */
export interface TaskModel extends Module {
  forward(inputs: Record<string, Tensor>): Tensor;
}

/**
 * One named input of a task model, per example: the compiler puts the batch axis in front. Integers are
 * drawn (synthetic data) and checked (a loader's data) in [0, below); floats are drawn from N(0, 1).
 */
export type InputSpec =
  | { readonly dtype: "i32"; readonly shape: readonly number[]; readonly below: number }
  | { readonly dtype: "f32"; readonly shape: readonly number[] };

/** An int32 input of shape `shape` (per example) whose values lie in [0, below): token ids, labels, positions. */
export function int32(shape: readonly number[], below: number): InputSpec {
  return { dtype: "i32", shape, below };
}

/** A float32 input of shape `shape` (per example): features, pixels, regression targets. */
export function float32(shape: readonly number[]): InputSpec {
  return { dtype: "f32", shape };
}

/** What a data loader is asked for: the global batch (every data-parallel rank's rows) of one step. */
export interface BatchRequest {
  /** 0-based index of the step; a resumed run asks again for the steps it has not taken. */
  readonly step: number;
  /** Examples in the batch: the first axis of every input. */
  readonly batch: number;
  /** The run's --seed: the same seed and step must give the same batch (runs resume exactly). */
  readonly seed: number;
}

/** One step's batch: per input, its values flattened row-major, [batch, ...shape]. */
export type Batch = Record<string, Int32Array | Float32Array>;

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
  build(config: C): LanguageModel | TaskModel;
  /** A task model's named inputs, per example (see InputSpec); without it the model is a language model. */
  inputs?(config: C): Record<string, InputSpec>;
  /** A task model's data: a function of the step and the seed alone; without it, synthetic batches. */
  data?(config: C, request: BatchRequest): Batch;
  /** The line that defined the model, which errors about its inputs and data point at. */
  readonly loc?: SourceLoc;
}

export function defineModel<C extends ModelConfig>(def: Omit<ModelDefinition<C>, "kind" | "loc">): ModelDefinition<C> {
  const loc = callerLoc();
  return { kind: "stowage-model", ...def, ...(loc && { loc }) };
}

/** A config check inside a model's build: fails with the message at the model line. */
export class ConfigError extends Error {}
export function require(condition: boolean, message: string): asserts condition {
  if (!condition) throw new ConfigError(message);
}
