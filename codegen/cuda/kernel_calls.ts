// The CUDA statements that run one IR node: the launch wrappers of runtime/cuda/cuda_kernels.h. They
// take the CPU kernels' arguments (codegen/cpu/kernel_calls.ts writes those), except for matmul and the
// fused LM head, which also take the GEMM precision, and grad_norm and norm_from_squares (--tp), which
// hand the norm back to the host: the arena is GPU memory, so generated code never reads it.
import { type Node, type Value, numel } from "../../ir/types.ts";
import type { MemoryPlan } from "../../ir/passes/memory_plan.ts";
import { lmHeadDims } from "../../ir/ops.ts";
import { kernelCalls, matmulArgs, valuePointer } from "../cpu/kernel_calls.ts";

/** How matmuls multiply: fp32 arithmetic (for checking), or bf16 inputs with fp32 accumulation. */
export const PRECISIONS = ["bf16", "fp32"] as const;
export type Precision = (typeof PRECISIONS)[number];

const NS = "stow::cuda";

export function cudaKernelCalls(precision: Precision) {
  return (n: Node, mem: MemoryPlan, tickets: ReadonlyMap<number, number>): string[] => {
    const ptr = (v: Value) => valuePointer(v, mem);
    const gemmPrecision = `${NS}::${precision.toUpperCase()}`;
    switch (n.op) {
      case "matmul":
        return [`${NS}::matmul(c, ${[...matmulArgs(n, mem), gemmPrecision].join(", ")});`];
      case "linear_cross_entropy": case "linear_cross_entropy_bwd": {
        const { N, C, V, tb, rows, cols } = lmHeadDims(n.inputs, n.attrs);
        const kernel = n.op === "linear_cross_entropy" ? "linear_cross_entropy_fwd" : n.op;
        const pointers = [...n.outputs, ...n.inputs].map(ptr);
        return [`${NS}::${kernel}(c, ${[...pointers, N, C, V, tb, rows, cols, gemmPrecision].join(", ")});`];
      }
      case "grad_norm":
        return [
          `{ static const int64_t sizes[] = {${n.inputs.map((g) => numel(g.shape)).join(", ")}};`,
          `  const float* grads[] = {${n.inputs.map(ptr).join(", ")}};`,
          `  const float norm = ${NS}::grad_norm(c, ${ptr(n.outputs[0])}, grads, sizes, ${n.inputs.length});`,
          // torch.nn.utils.clip_grad_norm_: scale by min(1, clip / (norm + 1e-6)).
          `  gscale = stow::math::clip_scale(a.grad_clip, norm); }`,
        ];
      case "norm_from_squares":
        return [
          `{ const float* parts[] = {${n.inputs.map(ptr).join(", ")}};`,
          `  const float norm = ${NS}::norm_from_squares(c, ${ptr(n.outputs[0])}, parts, ${n.inputs.length});`,
          `  gscale = stow::math::clip_scale(a.grad_clip, norm); }`,
        ];
      default:
        return kernelCalls(n, mem, tickets, NS);
    }
  };
}
