// The benchmark's configurations: GPT-2 shapes, the batch of one training step, and how many steps are
// run before measuring (warm-up) and then measured. seq is both the model's context and the step's length.
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
  model: ModelShape;
  batch: number;
  /** For PyTorch as installed: its generic OpenBLAS kernels make a step several times slower, so fewer. */
  stockTorchSteps: StepCounts;
}

/** Thread count of every run: the sgemm peak, Stowage and PyTorch. */
export const BENCH_THREADS = 2;

export const CONFIGS: BenchConfig[] = [
  {
    name: "small",
    model: { vocab: 8192, seq: 128, layers: 4, dim: 256, heads: 8 },
    batch: 8,
    warmupSteps: 3,
    measuredSteps: 20,
    stockTorchSteps: { warmupSteps: 2, measuredSteps: 10 },
  },
  {
    name: "124M",
    model: { vocab: 50257, seq: 256, layers: 12, dim: 768, heads: 12 },
    batch: 4,
    warmupSteps: 2,
    measuredSteps: 8,
    stockTorchSteps: { warmupSteps: 1, measuredSteps: 3 },
  },
];

/**
 * Model FLOPs per trained token as llm.c counts them for MFU (gpt2_estimate_mfu): 6N for the forward
 * and backward matmuls over every parameter, plus 6·L·T·C for attention's two T×T matmuls forward and
 * backward, of which the causal mask leaves half (PaLM's non-causal count is 12·L·T·C).
 */
export function flopsPerToken(paramCount: number, m: ModelShape): number {
  return 6 * paramCount + 6 * m.layers * m.seq * m.dim;
}
