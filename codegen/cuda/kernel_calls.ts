// The CUDA statements that run one IR node: the launch wrappers of runtime/cuda/cuda_kernels.h. They
// take the CPU kernels' arguments (codegen/cpu/kernel_calls.ts writes those), except for matmul, which
// also takes the GEMM precision, and grad_norm, which hands the norm back to the host: the arena is GPU
// memory, so generated code never reads it.
import { type Node, type Value, numel } from "../../ir/types.ts";
import type { MemoryPlan } from "../../ir/passes/memory_plan.ts";
import { kernelCalls, matmulArgs, valuePointer } from "../cpu/kernel_calls.ts";

/** How matmuls multiply: fp32 arithmetic (for checking), or bf16 inputs with fp32 accumulation. */
export const PRECISIONS = ["bf16", "fp32"] as const;
export type Precision = (typeof PRECISIONS)[number];

const NS = "stow::cuda";

export function cudaKernelCalls(precision: Precision) {
  return (n: Node, mem: MemoryPlan, tickets: ReadonlyMap<number, number>): string[] => {
    const ptr = (v: Value) => valuePointer(v, mem);
    switch (n.op) {
      case "matmul":
        return [`${NS}::matmul(c, ${[...matmulArgs(n, mem), `${NS}::${precision.toUpperCase()}`].join(", ")});`];
      case "grad_norm":
        return [
          `{ static const int64_t sizes[] = {${n.inputs.map((g) => numel(g.shape)).join(", ")}};`,
          `  const float* grads[] = {${n.inputs.map(ptr).join(", ")}};`,
          `  const float norm = ${NS}::grad_norm(c, ${ptr(n.outputs[0])}, grads, sizes, ${n.inputs.length});`,
          // torch.nn.utils.clip_grad_norm_: scale by min(1, clip / (norm + 1e-6)).
          `  gscale = stow::math::clip_scale(a.grad_clip, norm); }`,
        ];
      default:
        return kernelCalls(n, mem, tickets, NS);
    }
  };
}
