// The benchmark's configurations: GPT-2 shapes, the batch of one training step, and how many steps are
// run before measuring (warm-up) and then measured. seq is both the model's context and the step's length.
import type { CheckpointMode } from "../ir/passes/recompute.ts";

export interface ModelShape {
  vocab: number;
  seq: number;
  layers: number;
  dim: number;
  heads: number;
}

export interface StepCounts {
  warmupSteps: number;
  measuredSteps: number;
}

export interface BenchConfig extends StepCounts {
  name: string;
  /** The model file (default samples/gpt2.ts); `model` sets its config fields of those names. */
  modelFile?: string;
  model: ModelShape;
  batch: number;
  /** For PyTorch as installed: its generic OpenBLAS kernels make a step several times slower, so fewer. */
  stockTorchSteps: StepCounts;
}

/** Thread count of every run: the sgemm peak, Stowage and PyTorch. */
export const BENCH_THREADS = 2;

const SMALL: BenchConfig = {
  name: "small",
  model: { vocab: 8192, seq: 128, layers: 4, dim: 256, heads: 8 },
  batch: 8,
  warmupSteps: 3,
  measuredSteps: 20,
  stockTorchSteps: { warmupSteps: 2, measuredSteps: 10 },
};

const GPT2_124M: BenchConfig = {
  name: "124M",
  model: { vocab: 50257, seq: 256, layers: 12, dim: 768, heads: 12 },
  batch: 4,
  warmupSteps: 2,
  measuredSteps: 8,
  stockTorchSteps: { warmupSteps: 1, measuredSteps: 3 },
};

export const CONFIGS: BenchConfig[] = [SMALL, GPT2_124M];

/**
 * The checkpoint section: 124M compiled once per mode. Fewer steps than its speed run, so that three
 * runs (blocks recomputes about 16% more FLOPs) and their compiles stay within about four minutes; an
 * odd count, so the median is one measured step. One warm-up step first touches the arena's pages.
 */
export const CHECKPOINT_CONFIG: BenchConfig = { ...GPT2_124M, warmupSteps: 1, measuredSteps: 7 };
/**
 * The offload section: a GPT whose model data (240 MiB) dwarfs its blocks-checkpointed activations at
 * batch 2, so that 15% of its all-resident arena still holds a block's working set and a few chunks.
 */
export const OFFLOAD_CONFIG: BenchConfig = {
  name: "offload",
  model: { vocab: 2048, seq: 128, layers: 8, dim: 384, heads: 6 },
  batch: 2,
  warmupSteps: 2,
  measuredSteps: 5,
  stockTorchSteps: { warmupSteps: 0, measuredSteps: 0 },
};

/**
 * The fusion section: Llama's small preset (RMSNorm, SwiGLU and their gradients: the longest chains
 * fusion groups; GPT-2's are a bias add and GELU a layer), fused and unfused.
 */
export const FUSION_CONFIG: BenchConfig = {
  name: "llama-small",
  modelFile: "samples/llama.ts",
  model: { vocab: 256, seq: 128, layers: 4, dim: 256, heads: 8 },
  batch: 8,
  warmupSteps: 2,
  measuredSteps: 9,
  stockTorchSteps: { warmupSteps: 0, measuredSteps: 0 },
};

/** The modes compared; the first, none, is the baseline of the step-time overhead. */
export const CHECKPOINT_MODES_BENCHED: readonly [CheckpointMode, ...CheckpointMode[]] = ["none", "selective", "blocks"];

/**
 * Model FLOPs per trained token as llm.c counts them for MFU (gpt2_estimate_mfu): 6N for the forward
 * and backward matmuls over every parameter, plus 6·L·T·C for attention's two T×T matmuls forward and
 * backward, of which the causal mask leaves half (PaLM's non-causal count is 12·L·T·C).
 */
export function flopsPerToken(paramCount: number, m: ModelShape): number {
  return 6 * paramCount + 6 * m.layers * m.seq * m.dim;
}
