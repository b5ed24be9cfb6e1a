// The CUDA statements that run one IR node: the launch wrappers of runtime/cuda/cuda_kernels.h. They
// take the CPU kernels' arguments (../cpu/kernel_calls.ts writes those), except for matmul and the
// fused LM head, which also take the GEMM precision, and grad_norm and norm_from_squares (--tp), which
// hand the norm back to the host: the arena is GPU memory, so generated code never reads it.
import { type Node, type Value, valueBytes } from "../../../ir/types.ts";
import type { MemoryPlan } from "../../../ir/passes/memory_plan.ts";
import { isComputeOp, lmHeadDims } from "../../../ir/ops.ts";
import { gradNormArgs, kernelCalls, matmulArgs, valuePointer } from "../cpu/kernel_calls.ts";
import type { Precision } from "../../../plan/plan.ts";

const NS = "stow::cuda";

/**
 * node_uses (cuda_kernels.h): the arena ranges a node reads and writes, for the emulated target's race
 * checker. Copies and overlapped collectives declare their own ranges on their streams when queued,
 * and host work touches host memory, so those nodes only name themselves.
 */
function nodeUses(n: Node, mem: MemoryPlan, tickets: ReadonlyMap<number, number>): string {
  const onDevice = isComputeOp(n.op) && n.placement === "device" && !tickets.has(n.id);
  const range = (offset: number, bytes: number) => `{c.arena + ${offset}, ${bytes}}`;
  const ranges = (values: readonly Value[]) =>
    values.filter((v) => !mem.hostValues.has(v.id)).map((v) => range(mem.valueOffset.get(v.id)!, valueBytes(v)));
  const [wsOffset, wsBytes] = mem.workspace.get(n.id) ?? [0, 0];
  const reads = onDevice ? ranges(n.inputs) : [];
  const writes = onDevice ? [...ranges(n.outputs), ...(wsBytes > 0 ? [range(wsOffset, wsBytes)] : [])] : [];
  return `${NS}::node_uses(c, {${reads.join(", ")}}, {${writes.join(", ")}});`;
}

export function cudaKernelCalls(precision: Precision) {
  return (n: Node, mem: MemoryPlan, tickets: ReadonlyMap<number, number>): string[] => {
    const lines = cudaNodeCalls(n, mem, tickets, precision);
    return lines.length === 0 ? [] : [nodeUses(n, mem, tickets), ...lines];
  };
}

function cudaNodeCalls(n: Node, mem: MemoryPlan, tickets: ReadonlyMap<number, number>, precision: Precision): string[] {
  const ptr = (v: Value) => valuePointer(v, mem);
  const gemmPrecision = `${NS}::${precision.toUpperCase()}`;
  switch (n.op) {
    case "matmul":
      return [`${NS}::matmul(c, ${[...matmulArgs(n, mem), gemmPrecision].join(", ")});`];
    case "linear_cross_entropy":
    case "linear_cross_entropy_bwd": {
      const { N, C, V, tb, rows, cols } = lmHeadDims(n.inputs, n.attrs);
      const kernel = n.op === "linear_cross_entropy" ? "linear_cross_entropy_fwd" : n.op;
      const pointers = [...n.outputs, ...n.inputs].map(ptr);
      return [`${NS}::${kernel}(c, ${[...pointers, N, C, V, tb, rows, cols, gemmPrecision].join(", ")});`];
    }
    case "grad_norm": {
      const { lines, kernel, args } = gradNormArgs(n, mem);
      return [
        `{ ${lines.join("\n  ")}`,
        `  const float norm = ${NS}::${kernel}(c, ${[ptr(n.outputs[0]), ...args].join(", ")});`,
        // torch.nn.utils.clip_grad_norm_: scale by min(1, clip / (norm + 1e-6)).
        `  gscale = stow::math::clip_scale(a.grad_clip, norm); }`,
      ];
    }
    case "norm_from_squares":
      return [
        `{ const float* parts[] = {${n.inputs.map(ptr).join(", ")}};`,
        `  const float norm = ${NS}::norm_from_squares(c, ${ptr(n.outputs[0])}, parts, ${n.inputs.length});`,
        `  gscale = stow::math::clip_scale(a.grad_clip, norm); }`,
      ];
    default:
      return kernelCalls(n, mem, tickets, NS);
  }
}
