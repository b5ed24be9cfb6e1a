// The DSL that model files import as "stowage".
export { Tensor } from "./tensor.ts";
export { Parameter, init } from "./parameter.ts";
export { Module, ModuleList, Linear, Embedding, LayerNorm } from "./nn.ts";
export { embedding, arange, layerNorm, gelu, causalAttention, crossEntropy, checkpoint, silu, rotaryEmbedding } from "./functional.ts";
export { defineModel, require, ConfigError } from "./model.ts";
export type { ModelConfig, ModelDefinition, LanguageModel, ScaleRule } from "./model.ts";
