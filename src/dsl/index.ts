// The DSL that model files import as "stowage".
export { Tensor, where } from "./tensor.ts";
export { Parameter, ModuleBuffer, buffer, init } from "./parameter.ts";
export { Module, ModuleList, Linear, Embedding, LayerNorm, RMSNorm, Dropout } from "./nn.ts";
export {
  embedding,
  arange,
  full,
  layerNorm,
  rmsNorm,
  softmax,
  logSoftmax,
  gelu,
  causalAttention,
  scaledDotProductAttention,
  dropout,
  crossEntropy,
  checkpoint,
  silu,
  rotaryEmbedding,
} from "./functional.ts";
export { defineModel, require, ConfigError, int32, float32 } from "./model.ts";
export type { AttentionOptions } from "./functional.ts";
export type { ModelConfig, ModelDefinition, LanguageModel, TaskModel, InputSpec, BatchRequest, Batch, ScaleRule } from "./model.ts";
export { concat, cat, stack, pad, narrow, broadcastTo, indexSelect, gather } from "./movement.ts";
