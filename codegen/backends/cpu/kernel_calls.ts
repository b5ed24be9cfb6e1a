// The C++ statements that run one IR node on the CPU backend: which kernel of runtime/cpu/kernels.h it
// maps to, with pointers into the arena at the offsets the memory plan chose and the sizes the shapes
// give. Views and leaves run nothing (the registry's runsKernel). The switch is exhaustive over the
// ops: one added without a binding here is a type error.
import { BINARY_FNS, REDUCE_FNS, UNARY_FNS } from "../../../ir/op_attrs.ts";
import { isSharedMask, maskLayout } from "../../../ir/attention_mask.ts";
import { attentionDims, attentionGroup, attentionKeys, binaryBroadcast, isCausal, lmHeadDims } from "../../../ir/ops.ts";
import { type MemoryPlan, diskPieces } from "../../../ir/passes/memory_plan.ts";
import { type Node, type NodeOf, type Value, numel } from "../../../ir/types.ts";
import { aroundAxis, broadcastLayout, padLayout } from "../../../ir/movement.ts";

export function cFloat(x: number): string {
  // -Infinity is a mask's fill before a softmax (x.maskedFill(mask, -Infinity)); INFINITY is <cmath>'s.
  if (x === Infinity || x === -Infinity) return x > 0 ? "INFINITY" : "-INFINITY";
  if (!Number.isFinite(x)) throw new Error(`internal: cannot emit ${x} as a float literal`);
  return Number.isInteger(x) ? `${x}.0f` : `${x}f`;
}

/** A 4-byte word holding `value` (an i32's, else an f32's bits), as a C++ literal: pad's fill. */
function wordBits(value: number, dtype: Value["dtype"]): string {
  const word = new DataView(new ArrayBuffer(4));
  if (dtype === "i32") word.setInt32(0, value);
  else word.setFloat32(0, value);
  return `0x${word.getUint32(0).toString(16)}u`;
}

function last(v: Value): number {
  return v.shape[v.shape.length - 1];
}

/** A matmul's kernel arguments: out, a, b, batch, M, N, K, ta, tb, a's and b's batch strides. */
export function matmulArgs(n: NodeOf<"matmul">, mem: MemoryPlan): (string | number | boolean)[] {
  const [x0, x1] = n.inputs;
  const y0 = n.outputs[0];
  const ta = n.attrs.ta === true,
    tb = n.attrs.tb === true;
  const r = x0.shape.length;
  const batch = numel(x0.shape.slice(0, -2));
  const [M, N] = y0.shape.slice(-2);
  const K = ta ? x0.shape[r - 2] : x0.shape[r - 1];
  const aStride = numel(x0.shape.slice(-2));
  const bStride = x1.shape.length === 2 ? 0 : numel(x1.shape.slice(-2));
  return [valuePointer(y0, mem), valuePointer(x0, mem), valuePointer(x1, mem), batch, M, N, K, ta, tb, aStride, bStride];
}

/**
 * The attention kernels' sizes: BH, T, D, group, and only where they differ from the causal
 * self-attention defaults, Tk, causal and the mask (so that plans of causal models call them as before);
 * the backward's mask gradient (`dmask`) and the mask's strides only where they differ from one [T, Tk]
 * mask for every slab without a gradient.
 */
function attentionArgs(
  n: NodeOf<"attention"> | NodeOf<"attention_bwd">,
  mask: Value | undefined,
  ptr: (v: Value) => string,
  dmask?: Value,
): (string | number | boolean)[] {
  const [q, k] = n.inputs;
  const { BH, T, D } = attentionDims(q.shape);
  const sizes = [BH, T, D, attentionGroup(q.shape, k.shape)];
  const Tk = attentionKeys(k.shape);
  if (Tk === T && isCausal(n.attrs) && !mask) return sizes;
  const args = [...sizes, Tk, isCausal(n.attrs), mask ? ptr(mask) : "nullptr"];
  const layout = mask && maskLayout(q.shape, Tk, mask.shape);
  if (typeof layout === "string") throw new Error(`internal: attention: ${layout}`);
  if (!dmask && (!layout || isSharedMask(layout))) return args;
  const strides = layout ? [layout.heads, layout.batch, layout.head, layout.row] : [];
  return n.op === "attention" ? [...args, ...strides] : [...args, dmask ? ptr(dmask) : "nullptr", ...strides];
}

/** Where a value lives, as the generated code's F/I/H macros address it. */
export function valuePointer(v: Value, mem: MemoryPlan): string {
  return `${mem.hostValues.has(v.id) ? "H" : v.dtype === "i32" ? "I" : "F"}(${mem.valueOffset.get(v.id)})`;
}

/** A fused node's generated kernel's name: one per node, by its first output's value id. */
/**
 * The gradient norm's arrays: sizes and pointers, and with gradients in the disk tier their offsets
 * there (-1: at the pointer; a null pointer: its sums of squares kept as it went to disk). Returns
 * the lines that declare them and the kernel's arguments after the output.
 */
export function gradNormArgs(n: Node, mem: MemoryPlan): { lines: string[]; kernel: string; args: string[] } {
  const onDisk = n.inputs.map((g) => mem.diskValues.has(g.id));
  const lines = [
    `static const int64_t sizes[] = {${n.inputs.map((g) => numel(g.shape)).join(", ")}};`,
    `const float* grads[] = {${n.inputs.map((g, k) => (onDisk[k] ? "nullptr" : valuePointer(g, mem))).join(", ")}};`,
  ];
  if (!onDisk.includes(true)) return { lines, kernel: "grad_norm", args: ["grads", "sizes", String(n.inputs.length)] };
  lines.push(`static const int64_t disk[] = {${n.inputs.map((g, k) => (onDisk[k] ? mem.valueOffset.get(g.id)! : -1)).join(", ")}};`);
  return { lines, kernel: "grad_norm_from_disk", args: ["grads", "disk", "sizes", String(n.inputs.length)] };
}

export function fusedKernelName(n: NodeOf<"fused">): string {
  return `fused_${n.outputs[0].id}`;
}

/**
 * `tickets` gives each asynchronous node (copies, and collectives that have a `wait`) its slot in the
 * program's ticket array, which the `wait` on its result reads. `ns` is the namespace of the kernels (the
 * CUDA backend's have the same signatures in stow::cuda).
 */
export function kernelCalls(n: Node, mem: MemoryPlan, tickets: ReadonlyMap<number, number> = new Map(), ns = "stow"): string[] {
  const ticket = (v: Value) => `tk[${tickets.get(v.producer.id)}]`;
  const ptr = (v: Value) => valuePointer(v, mem);
  const call = (kernel: string, ...args: (string | number | boolean)[]) => `${ns}::${kernel}(c, ${args.join(", ")});`;
  const [x0, x1, x2] = n.inputs;
  const [y0, y1, y2] = n.outputs;
  switch (n.op) {
    case "param":
    case "opt_state":
    case "input":
    case "reshape":
    case "chunk_view":
      return [];
    case "iota":
      return [call("iota", ptr(y0), numel(y0.shape))];
    case "fill":
      return [call("fill", ptr(y0), numel(y0.shape), cFloat(n.attrs.value))];
    case "embedding":
      return [call("embedding_fwd", ptr(y0), ptr(x0), ptr(x1), numel(x1.shape), x0.shape[1], x0.shape[0])];
    case "embedding_bwd_acc":
      return [call("embedding_bwd_acc", ptr(y0), ptr(x0), ptr(x1), ptr(x2), numel(x1.shape), last(x2), x0.shape[0])];
    case "embedding_bwd":
      return [call("embedding_bwd", ptr(y0), ptr(x0), ptr(x1), numel(x0.shape), last(x1), n.attrs.V)];
    case "matmul":
      return [call("matmul", ...matmulArgs(n, mem))];
    case "add":
    case "mul":
      return [call(n.op, ptr(y0), ptr(x0), ptr(x1), numel(x0.shape), numel(x1.shape))];
    case "scale":
      return [call("scale", ptr(y0), ptr(x0), cFloat(n.attrs.s), numel(x0.shape))];
    case "sum_rows": {
      const cols = numel(y0.shape);
      return [call("sum_rows", ptr(y0), ptr(x0), numel(x0.shape) / cols, cols)];
    }
    case "layernorm":
      return [
        call(
          "layernorm_fwd",
          ptr(y0),
          ptr(x0),
          ptr(x1),
          x2 ? ptr(x2) : "nullptr",
          numel(x0.shape) / last(x0),
          last(x0),
          cFloat(n.attrs.eps),
        ),
      ];
    case "layernorm_bwd":
      return [
        call(
          "layernorm_bwd",
          ptr(y0),
          ptr(y1),
          y2 ? ptr(y2) : "nullptr",
          ptr(x0),
          ptr(x1),
          ptr(x2),
          numel(x0.shape) / last(x0),
          last(x0),
          cFloat(n.attrs.eps),
        ),
      ];
    case "unary":
      return [call("unary", ptr(y0), ptr(x0), numel(x0.shape), UNARY_FNS.indexOf(n.attrs.fn), cFloat(n.attrs.p ?? 0))];
    case "unary_bwd":
      return [call("unary_bwd", ptr(y0), ptr(x0), ptr(x1), numel(x0.shape), UNARY_FNS.indexOf(n.attrs.fn), cFloat(n.attrs.p ?? 0))];
    case "binary": {
      const { inner, nb } = binaryBroadcast(x0.shape, x1.shape)!;
      return [call("binary", ptr(y0), ptr(x0), ptr(x1), numel(x0.shape), inner, nb, BINARY_FNS.indexOf(n.attrs.fn))];
    }
    case "binary_bwd": {
      const { inner, nb } = binaryBroadcast(x0.shape, x1.shape)!;
      return [
        call("binary_bwd", ptr(y0), ptr(x0), ptr(x1), ptr(x2), numel(x0.shape), inner, nb, BINARY_FNS.indexOf(n.attrs.fn), n.attrs.side),
      ];
    }
    case "reduce":
      return [call("reduce_last", ptr(y0), ptr(x0), numel(x0.shape) / last(x0), last(x0), REDUCE_FNS.indexOf(n.attrs.fn))];
    case "reduce_bwd": {
      const fn = REDUCE_FNS.indexOf(n.attrs.fn);
      const rows = numel(y0.shape) / last(y0);
      if (n.inputs.length === 3) return [call("reduce_last_bwd", ptr(y0), ptr(x0), ptr(x1), ptr(x2), rows, last(y0), fn)];
      return [call("reduce_last_bwd", ptr(y0), "nullptr", "nullptr", ptr(x0), rows, last(y0), fn)];
    }
    case "gelu":
      return [call("gelu_fwd", ptr(y0), ptr(x0), numel(x0.shape))];
    case "gelu_bwd":
      return [call("gelu_bwd", ptr(y0), ptr(x0), ptr(x1), numel(x0.shape))];
    case "attention":
      return [call("attention_fwd", ptr(y0), ptr(y1), ...n.inputs.slice(0, 3).map(ptr), ...attentionArgs(n, n.inputs[3], ptr))];
    case "attention_bwd":
      return [
        call(
          "attention_bwd",
          ptr(y0),
          ptr(y1),
          ptr(y2),
          ...n.inputs.slice(0, 6).map(ptr),
          ...attentionArgs(n, n.inputs[6], ptr, n.outputs[3]),
        ),
      ];
    case "dropout":
      // The mask is drawn for the step being trained (a.adam.t, 1-based), so each step draws a new one.
      return [call("dropout", ptr(y0), ptr(x0), numel(x0.shape), cFloat(n.attrs.p), `${n.attrs.seed}u`, "a.adam.t")];
    case "rope": {
      const T = x0.shape[x0.shape.length - 2];
      return [call("rope", ptr(y0), ptr(x0), numel(x0.shape) / last(x0), T, last(x0), cFloat(n.attrs.base), n.attrs.inverse === true)];
    }
    case "silu":
      return [call("silu_fwd", ptr(y0), ptr(x0), numel(x0.shape))];
    case "silu_bwd":
      return [call("silu_bwd", ptr(y0), ptr(x0), ptr(x1), numel(x0.shape))];
    case "cross_entropy":
      return [call("cross_entropy_fwd", ptr(y0), ptr(x0), ptr(x1), numel(x1.shape), last(x0))];
    case "cross_entropy_bwd":
      return [call("cross_entropy_bwd", ptr(y0), ptr(x0), ptr(x1), ptr(x2), numel(x1.shape), last(x0))];
    case "linear_cross_entropy": {
      const { N, C, V, tb, rows, cols } = lmHeadDims(n.inputs, n.attrs);
      return [call("linear_cross_entropy_fwd", ptr(y0), ptr(y1), ptr(x0), ptr(x1), ptr(x2), N, C, V, tb, rows, cols)];
    }
    case "linear_cross_entropy_bwd": {
      const { N, C, V, tb, rows, cols } = lmHeadDims(n.inputs, n.attrs);
      return [call("linear_cross_entropy_bwd", ptr(y0), ptr(y1), ...n.inputs.map(ptr), N, C, V, tb, rows, cols)];
    }
    case "transpose": {
      const perm = n.attrs.perm;
      return [
        `{ static const int64_t shape[] = {${x0.shape.join(", ")}}; static const int perm[] = {${perm.join(", ")}};`,
        `  ${call("permute", ptr(y0), ptr(x0), x0.shape.length, "shape", "perm")} }`,
      ];
    }
    case "split": {
      const rows = numel(x0.shape) / last(x0);
      let offset = 0;
      return n.outputs.map((out) => {
        const line = call("slice_last", ptr(out), ptr(x0), rows, last(x0), offset, last(out));
        offset += last(out);
        return line;
      });
    }
    case "concat": {
      // Along axis a, each part is rows of (its length along a) x (the axes after a) words.
      const axis = n.attrs.axis ?? y0.shape.length - 1;
      const { outer, inner } = aroundAxis(y0.shape, axis);
      let offset = 0;
      return n.inputs.map((part) => {
        const width = part.shape[axis] * inner;
        const line = call("place_last", ptr(y0), ptr(part), outer, y0.shape[axis] * inner, offset, width);
        offset += width;
        return line;
      });
    }
    case "grad_norm": {
      const { lines, kernel, args } = gradNormArgs(n, mem);
      return [
        `{ ${lines.join("\n  ")}`,
        `  ${call(kernel, ptr(y0), ...args)} }`,
        // torch.nn.utils.clip_grad_norm_: scale by min(1, clip / (norm + 1e-6)).
        `if (a.grad_clip > 0) gscale = std::min(1.0f, a.grad_clip / (${ptr(y0)}[0] + 1e-6f));`,
      ];
    }
    case "chunk_h2d":
      // The chunk's parameters are contiguous on the host, in the device chunk's layout: one copy. On
      // disk they are laid out alike from a whole block: one read into the load staging buffer, then the copy.
      if (mem.diskValues.has(x0.id))
        return [
          `${ticket(y0)} = ${call("h2d_from_disk", ptr(y0), mem.valueOffset.get(x0.id)!, `H(${mem.paramStage!.load})`, numel(y0.shape))}`,
        ];
      return [`${ticket(y0)} = ${call("h2d_async", ptr(y0), ptr(x0), numel(y0.shape))}`];
    case "copy_d2h":
      // A gradient kept in the disk tier lands in the gradient staging buffer and is written from there.
      if (mem.diskValues.has(y0.id))
        return [
          `${ticket(y0)} = ${call("d2h_to_disk", mem.valueOffset.get(y0.id)!, ptr(x0), `H(${mem.gradStage!.copy})`, numel(x0.shape))}`,
        ];
      return [`${ticket(y0)} = ${call("d2h_async", ptr(y0), ptr(x0), numel(x0.shape))}`];
    case "wait":
      // A reduce-scatter's mean is taken once its sum has arrived.
      if (x0.producer.op === "zero_reduce_scatter") return [call("zero_reduce_scatter_wait", ticket(x0), ptr(x0), x0.producer.attrs.shard)];
      if (x0.producer.op === "zero_all_gather") return [call("wait_collective", ticket(x0))];
      if (x0.producer.op === "all_reduce")
        return [call("dp_all_reduce_wait", ticket(x0), ptr(x0), numel(x0.shape), x0.producer.attrs.reduce === "mean")];
      return [call("wait_transfer", ticket(x0))];
    case "adamw": {
      const hyper = ["a.adam", "gscale", n.attrs.decay === true] as const;
      // With the moments in the disk tier, host AdamW stages them through the host region's buffers,
      // split into the disk pipeline's slots. With the parameter or the gradient there too, through
      // their staging buffers (-1 and no buffer: in host memory).
      if (mem.diskValues.has(x2.id)) {
        const [mStage, vStage] = mem.diskStage!;
        const staged = (v: Value, stage: number | undefined) =>
          mem.diskValues.has(v.id) ? ["nullptr", mem.valueOffset.get(v.id)!, `H(${stage!})`] : [ptr(v), -1, "nullptr"];
        const param = staged(x0, mem.paramStage?.param);
        const grad = staged(x1, mem.gradStage?.update);
        const disk = [mem.valueOffset.get(x2.id)!, mem.valueOffset.get(n.inputs[3].id)!, `H(${mStage})`, `H(${vStage})`];
        const { piece, slots } = diskPieces(mem);
        return [call("adamw_on_disk", ticket(x1), ...param, ...grad, ...disk, piece, slots, numel(x0.shape), ...hyper)];
      }
      const args = [ptr(x0), ptr(x1), ptr(x2), ptr(n.inputs[3]), numel(x0.shape), ...hyper];
      // On an offloaded chunk, AdamW runs on the host once the gradient's copy has arrived.
      return [n.placement === "host" ? call("adamw_on_host", ticket(x1), ...args) : call("adamw", ...args)];
    }
    case "zero_adamw": {
      // Inputs: m, v, the norm when clipped, then the chunk's parameters (ZeRO 3: this rank's shard of
      // them) and their gradients (ZeRO 2 and 3: this rank's shard of the chunk's).
      const first = n.attrs.clip ? 3 : 2;
      const params = n.inputs.slice(first, first + (n.attrs.paramShard ? 1 : n.attrs.count));
      const grads = n.inputs.slice(first + params.length);
      const sizes = n.attrs.sizes ?? params.map((p) => numel(p.shape));
      if (n.attrs.offsets[0] !== 0) throw new Error("internal: a ZeRO chunk starts with its first parameter");
      if (n.placement === "host") {
        // ZeRO 3 with the chunk offloaded: on the host shard, once the gradient shard's copy has arrived.
        if (!n.attrs.paramShard || !n.attrs.gradShard) throw new Error("internal: a host ZeRO update is ZeRO 3's");
        return [
          `{ static const int64_t offsets[] = {${n.attrs.offsets.join(", ")}};`,
          `  static const int64_t sizes[] = {${sizes.join(", ")}};`,
          `  static const bool decay[] = {${n.attrs.decay.map((d) => d === 1).join(", ")}};`,
          `  ${call("zero_adamw_on_host", ticket(grads[0]), ptr(params[0]), ptr(grads[0]), "offsets", "sizes", "decay", n.attrs.count, ptr(x0), ptr(x1), n.attrs.shard, "a.adam", "gscale")} }`,
        ];
      }
      return [
        `{ static const int64_t offsets[] = {${n.attrs.offsets.join(", ")}};`,
        `  static const int64_t sizes[] = {${sizes.join(", ")}};`,
        `  static const bool decay[] = {${n.attrs.decay.map((d) => d === 1).join(", ")}};`,
        // ZeRO 2: one gradient, this rank's shard of the chunk's.
        n.attrs.gradShard ? `  const float* const* grads = nullptr;` : `  const float* grads[] = {${grads.map(ptr).join(", ")}};`,
        `  ${call("zero_adamw", ptr(params[0]), n.attrs.paramShard === true, "grads", n.attrs.gradShard ? ptr(grads[0]) : "nullptr", "offsets", "sizes", "decay", n.attrs.count, ptr(x0), ptr(x1), n.attrs.shard, "a.adam", "gscale")} }`,
      ];
    }
    case "zero_pack":
      return [
        `{ static const int64_t offsets[] = {${n.attrs.offsets.join(", ")}};`,
        `  static const int64_t sizes[] = {${n.inputs.map((g) => numel(g.shape)).join(", ")}};`,
        `  const float* grads[] = {${n.inputs.map(ptr).join(", ")}};`,
        `  ${call("zero_pack", ptr(y0), "grads", "offsets", "sizes", n.inputs.length, n.attrs.shard)} }`,
      ];
    case "zero_reduce_scatter":
      return [`${ticket(y0)} = ${call("zero_reduce_scatter_start", ptr(y0), ptr(x0), n.attrs.shard)}`];
    case "zero_gather":
      return [call("zero_gather", ptr(x0), n.attrs.shard)];
    case "zero_param_shard":
      return [];
    case "zero_all_gather":
      return [`${ticket(y0)} = ${call("zero_all_gather_start", ptr(y0), ptr(x0), n.attrs.shard)}`];
    case "tp_copy":
      return [];
    case "all_reduce":
      if (n.attrs.group === "dp") {
        if (n.attrs.reduce === "max") throw new Error("internal: a data-parallel all_reduce sums or takes the mean");
        // With a `wait` (overlap_collectives.ts) it runs beside compute and the wait takes the mean.
        if (tickets.has(n.id)) return [`${ticket(y0)} = ${call("dp_all_reduce_start", ptr(y0), ptr(x0), numel(x0.shape))}`];
        return [call("dp_all_reduce", ptr(y0), ptr(x0), numel(x0.shape), n.attrs.reduce === "mean")];
      }
      if (n.attrs.reduce === "mean") throw new Error("internal: a tensor-parallel all_reduce sums or takes the max");
      return [call("all_reduce", ptr(y0), ptr(x0), numel(x0.shape), n.attrs.reduce === "max")];
    case "all_gather":
      return [call("all_gather", ptr(y0), ptr(x0), numel(x0.shape) / last(x0), last(x0))];
    case "reduce_scatter":
    case "shard_slice":
      return [call(n.op, ptr(y0), ptr(x0), numel(y0.shape) / last(y0), last(y0))];
    case "broadcast":
      return [call("broadcast", ptr(x0), numel(x0.shape) * 4, n.attrs.root)];
    case "embedding_vp":
      return [call("embedding_vp_fwd", ptr(y0), ptr(x0), ptr(x1), numel(x1.shape), x0.shape[1], x0.shape[0], n.attrs.vocab)];
    case "embedding_vp_bwd":
      return [call("embedding_vp_bwd", ptr(y0), ptr(x0), ptr(x1), numel(x0.shape), last(x1), n.attrs.V)];
    case "cross_entropy_vp_max":
      return [call("cross_entropy_vp_max", ptr(y0), ptr(x0), numel(y0.shape), last(x0), n.attrs.vocab)];
    case "cross_entropy_vp_sums":
      return [call("cross_entropy_vp_sums", ptr(y0), ptr(x0), ptr(x1), ptr(x2), numel(x1.shape), last(x0), n.attrs.vocab)];
    case "cross_entropy_vp":
      return [call("cross_entropy_vp", ptr(y0), ptr(x2), ptr(n.inputs[3]), numel(x1.shape))];
    case "cross_entropy_vp_bwd":
      return [call("cross_entropy_vp_bwd", ptr(y0), ...n.inputs.map(ptr), numel(x1.shape), last(x0), n.attrs.vocab)];
    case "sum_squares":
      return [
        `{ static const int64_t sizes[] = {${n.inputs.map((g) => numel(g.shape)).join(", ")}};`,
        `  const float* grads[] = {${n.inputs.map(ptr).join(", ")}};`,
        `  ${call("sum_squares", ptr(y0), "grads", "sizes", n.inputs.length)} }`,
      ];
    case "norm_from_squares":
      return [
        `{ const float* parts[] = {${n.inputs.map(ptr).join(", ")}};`,
        `  ${call("norm_from_squares", ptr(y0), "parts", n.inputs.length)} }`,
        `if (a.grad_clip > 0) gscale = std::min(1.0f, a.grad_clip / (${ptr(y0)}[0] + 1e-6f));`,
      ];
    case "slice": {
      const { outer, D, inner } = aroundAxis(x0.shape, n.attrs.dim);
      return [call("slice_last", ptr(y0), ptr(x0), outer, D * inner, n.attrs.start * inner, n.attrs.length * inner)];
    }
    case "pad": {
      const { inShape, before, outShape } = padLayout(x0.shape, n.attrs.before, n.attrs.after);
      return [
        `{ static const int64_t in_shape[] = {${inShape.join(", ")}}; static const int64_t before[] = {${before.join(", ")}};`,
        `  static const int64_t out_shape[] = {${outShape.join(", ")}};`,
        `  ${call("pad", ptr(y0), ptr(x0), inShape.length, "in_shape", "before", "out_shape", wordBits(n.attrs.value, x0.dtype))} }`,
      ];
    }
    case "expand":
    case "expand_bwd": {
      const [small, big] = n.op === "expand" ? [x0, y0] : [y0, x0];
      const layout = broadcastLayout(small.shape, big.shape)!;
      // Both kernels take the small shape, then the big one.
      const shapes = `static const int64_t small[] = {${layout.small.join(", ")}}; static const int64_t big[] = {${layout.big.join(", ")}};`;
      return [`{ ${shapes}`, `  ${call(n.op, ptr(y0), ptr(x0), layout.big.length, "small", "big")} }`];
    }
    case "index_select": {
      const { outer, D, inner } = aroundAxis(x0.shape, n.attrs.dim);
      return [call("take_axis", ptr(y0), ptr(x0), ptr(x1), outer, D, numel(x1.shape), inner, false)];
    }
    case "index_select_bwd": {
      const { outer, D, inner } = aroundAxis(y0.shape, n.attrs.dim);
      return [call("take_axis_bwd", ptr(y0), ptr(x0), ptr(x1), outer, D, numel(x0.shape), inner, false)];
    }
    case "gather": {
      const { outer, D, inner } = aroundAxis(x0.shape, n.attrs.dim);
      return [call("take_axis", ptr(y0), ptr(x0), ptr(x1), outer, D, x1.shape[n.attrs.dim], inner, true)];
    }
    case "gather_bwd": {
      const { outer, D, inner } = aroundAxis(y0.shape, n.attrs.dim);
      return [call("take_axis_bwd", ptr(y0), ptr(x0), ptr(x1), outer, D, x0.shape[n.attrs.dim], inner, true)];
    }
    case "where": {
      const fit = (v: Value) => {
        const { inner, nb } = binaryBroadcast(y0.shape, v.shape)!;
        return [inner, nb];
      };
      return [call("where", ptr(y0), ptr(x0), ptr(x1), ptr(x2), numel(y0.shape), ...fit(x0), ...fit(x1), ...fit(x2))];
    }
    case "fused":
      // A kernel of the generated file itself (codegen/fused_kernel.ts), in the plan's namespace.
      return [`${fusedKernelName(n)}(c);`];
    default: {
      // Every op has a case above: n is `never` here, so a new op without one does not compile.
      const unhandled: never = n;
      throw new Error(`internal: no CPU kernel for op ${(unhandled as Node).op}`);
    }
  }
}
