// Every op's kernel on every backend, in the style of tinygrad's per-op tests: one line per op below (a
// small input spec: shapes, attributes, and where an op needs what another makes, the tiny graph that
// makes it; "no kernel" for the sources and views, as the registry's runsKernel says). Each line becomes
// an IR graph (ir/builder.ts) whose values get their own arena (or host) ranges; the backend's own
// kernel_calls write the C++ that runs it, as in a generated plan (programView, the templates' view of a
// program), and a driver (test/native/op_kernels_main.h) runs every case from one binary per backend,
// built by codegen/build.ts as a plan is (its object cache included). Each result is compared with the
// float64 reference interpreter (ir/interpret.ts), or, for the ops it does not model (copies, tensor
// parallelism), with a reference written here.
//
// Backends: the CPU, and the CUDA backend on its emulated target (--emulate) when Boost.Context is
// installed (npm run setup does). The collectives run at one rank, on the single-process communicator
// (copies at most, as a --tp 1 build links them); their semantics across ranks are checked by
// test/system/kernels_tp.test.ts (simulated ranks) and, through MPI and the NCCL stand-in, by
// test/system/tp.test.ts and test/system/cuda_emulate.test.ts.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { GraphBuilder } from "../../ir/builder.ts";
import { type AdamOptions, type Tensor, evalNode } from "../../ir/interpret.ts";
import * as K from "../../ir/interpret_ops.ts";
import { OPS, type OpName, opDef, runsKernel, workspaceBytes } from "../../ir/ops.ts";
import { type AttrsOf, BINARY_FNS, REDUCE_FNS, UNARY_FNS, type UnaryFn } from "../../ir/op_attrs.ts";
import type { Breakdown, MemoryPlan } from "../../ir/passes/memory_plan.ts";
import {
  type Attrs,
  type Graph,
  type Node,
  type NodeOf,
  type Placement,
  type Shape,
  type Value,
  numel,
  valueBytes,
} from "../../ir/types.ts";
import { type NodeCalls, programView, renderFusedKernels } from "../../codegen/backends/cpu/emit.ts";
import { fusedKernelView } from "../../codegen/fused_kernel.ts";
import { kernelCalls } from "../../codegen/backends/cpu/kernel_calls.ts";
import { cudaKernelCalls } from "../../codegen/backends/cuda/kernel_calls.ts";
import { buildPlan } from "../../codegen/build.ts";
import type { Backend } from "../../plan/plan.ts";
import { mulberry32 } from "../../src/util/random.ts";
import { repoRoot } from "../helpers/run.ts";

// ---- the cases ------------------------------------------------------------------------------------

/**
 * An `input` leaf: f32 values in [lo, hi] (default [-1, 1]), or given element by element by `values`, or
 * i32 ids below `ids`; `host`: in the host region.
 */
interface Leaf {
  shape: Shape;
  ids?: number;
  lo?: number;
  hi?: number;
  values?: (k: number) => number;
  host?: boolean;
}

interface Case {
  leaves: Leaf[];
  attrs?: Attrs;
  /** Where the op's node runs (default: the device). */
  placement?: Placement;
  /** The graph, when it is more than the op on the leaves: what feeds the op, or what reads its result. */
  build?: (b: GraphBuilder, x: Value[]) => void;
  /** |got - want| <= atol + rtol |want| (default 1e-5 and 1e-4: fp32 kernels against float64). */
  tol?: { atol: number; rtol: number };
  /** Cases of one group share their inputs (this seed) and must give bitwise the same outputs. */
  same?: { group: string; seed: number };
}

const f = (...shape: number[]): Leaf => ({ shape });
const ids = (below: number, ...shape: number[]): Leaf => ({ shape, ids: below });
const positive = (...shape: number[]): Leaf => ({ shape, lo: 0.25, hi: 2 });
const onHost = (leaf: Leaf): Leaf => ({ ...leaf, host: true });
const add = (b: GraphBuilder, op: OpName, inputs: readonly Value[], attrs: Attrs = {}, placement: Placement = "device") =>
  b.add(op, inputs, attrs as AttrsOf<OpName>, undefined, { placement }).outputs;

/**
 * A mask [Tq, Tk] for the attention variants: finite values, and -Infinity in three patterns by row: the
 * first 33 keys hidden (a whole first tile of the CUDA kernel, 32 keys), every key hidden (a row that sees
 * nothing), every third key hidden.
 */
const attentionMask = (Tq: number, Tk: number, ...slabs: number[]): Leaf => ({
  shape: [...slabs, Tq, Tk],
  values: (e) => {
    const [i, j] = [Math.floor(e / Tk), e % Tk];
    const hidden = [j < 33, true, j % 3 === 0][i % 3];
    return hidden ? -Infinity : 0.5 * Math.sin(e);
  },
});

/** A learned bias (finite, with a gradient): `shape` broadcast over the scores. */
const bias = (...shape: number[]): Leaf => ({ shape, lo: -2, hi: 2 });

/**
 * Attention beyond causal self-attention: not causal, cross (Tq != Tk), masked (shared by every slab, or
 * broadcast per example or per head), with a learned bias (`learned`: the backward gives its gradient);
 * shapes past a 32-key tile.
 */
const ATTENTION_VARIANTS: { q: number[]; kv: number[]; causal: boolean; mask?: Leaf; learned?: true }[] = [
  { q: [2, 3, 5, 4], kv: [2, 3, 5, 4], causal: false },
  { q: [2, 4, 3, 4], kv: [2, 2, 7, 4], causal: false }, // cross-attention, grouped heads
  { q: [1, 2, 6, 4], kv: [1, 1, 3, 4], causal: true }, // causal cross-attention: query i sees keys j <= i
  { q: [1, 2, 4, 40], kv: [1, 1, 37, 40], causal: false, mask: attentionMask(4, 37) },
  { q: [1, 2, 37, 5], kv: [1, 2, 37, 5], causal: true, mask: attentionMask(37, 37) },
  { q: [2, 2, 6, 4], kv: [2, 1, 35, 4], causal: false, mask: attentionMask(6, 35, 2, 1) }, // per example
  { q: [2, 3, 4, 4], kv: [2, 3, 4, 4], causal: false, mask: bias(1, 3, 4, 4), learned: true }, // per head
  { q: [2, 2, 3, 4], kv: [2, 2, 34, 4], causal: false, mask: bias(2, 2, 3, 34), learned: true }, // per example and head
  { q: [2, 2, 5, 4], kv: [2, 1, 5, 4], causal: true, mask: bias(2, 1, 1, 5), learned: true }, // one row for every query
];

const attentionAttrs = (causal: boolean): Attrs => (causal ? {} : { causal: false });

// The vocabulary-parallel loss at one rank: 7 columns of which the last is padding (vocab 6).
const vp = { vocab: 6 };
const vpChain = (b: GraphBuilder, [logits, targets]: Value[]) => {
  const [max] = add(b, "cross_entropy_vp_max", [logits], vp);
  const [sums] = add(b, "cross_entropy_vp_sums", [logits, targets, max], vp);
  return { logits, targets, max, sums };
};

/** Inputs where `fn` is defined and smooth: positive for log, sqrt and their kin. */
const domain = (fn: UnaryFn, n: number): Leaf =>
  ["log", "sqrt", "rsqrt", "reciprocal", "pow"].includes(fn) ? positive(n) : { shape: [n], lo: -3, hi: 3 };

/** The sources and views: they run nothing (a test holds this to the registry's runsKernel). */
const NO_KERNEL = "no kernel";

/**
 * One line per op (a type error when an op is missing), several where the kernel has paths worth
 * telling apart. Sizes are small and awkward: odd, not multiples of a block or a tile.
 */
const CASES: Record<OpName, Case | Case[] | typeof NO_KERNEL> = {
  param: NO_KERNEL,
  opt_state: NO_KERNEL,
  input: NO_KERNEL,
  reshape: NO_KERNEL,
  chunk_view: NO_KERNEL,
  zero_param_shard: NO_KERNEL,
  tp_copy: NO_KERNEL,
  iota: { leaves: [], attrs: { n: 37 } },
  fill: { leaves: [], attrs: { shape: [3, 5], value: 0.75 } },
  embedding: { leaves: [f(11, 6), ids(11, 2, 7)] },
  embedding_bwd: { leaves: [ids(9, 13), f(13, 5)], attrs: { V: 9 } },
  embedding_bwd_acc: { leaves: [f(9, 5), ids(9, 13), f(13, 5)] },
  matmul: [
    { leaves: [f(2, 3, 4), f(2, 4, 5)] },
    { leaves: [f(3, 4), f(4, 5)] },
    { leaves: [f(4, 3), f(5, 4)], attrs: { ta: true, tb: true } },
  ],
  add: { leaves: [f(3, 7), f(7)] },
  mul: { leaves: [f(3, 7), f(7)] },
  scale: { leaves: [f(5, 3)], attrs: { s: -1.5 } },
  sum_rows: { leaves: [f(4, 3, 5)], attrs: { to: [3, 5] } },
  layernorm: [
    { leaves: [f(4, 6), f(6), f(6)], attrs: { eps: 1e-5 } },
    { leaves: [f(4, 6), f(6)], attrs: { eps: 1e-5 } },
  ],
  layernorm_bwd: [
    { leaves: [f(4, 6), f(6), f(4, 6)], attrs: { eps: 1e-5 } },
    { leaves: [f(4, 6), f(6), f(4, 6)], attrs: { eps: 1e-5, bias: false } },
  ],
  unary: UNARY_FNS.map((fn) => ({ leaves: [domain(fn, 37)], attrs: { fn, p: 1.5 } })),
  unary_bwd: UNARY_FNS.map((fn) => ({ leaves: [domain(fn, 37), f(37)], attrs: { fn, p: 1.5 } })),
  binary: [
    ...BINARY_FNS.map((fn) => ({ leaves: [positive(3, 7), positive(7)], attrs: { fn } })),
    { leaves: [f(3, 5, 4), f(3, 5, 1)], attrs: { fn: "sub" } }, // a keepdim reduction's [..., 1]
    { leaves: [f(3, 5, 4), f(5, 1)], attrs: { fn: "maximum" } },
    ...(["eq", "le", "ge"] as const).map((fn) => ({
      leaves: [
        { shape: [2, 3], lo: 0.5, hi: 0.5 },
        { shape: [3], lo: 0.5, hi: 0.5 },
      ],
      attrs: { fn },
    })), // ties
  ],
  binary_bwd: [
    ...BINARY_FNS.flatMap((fn) => [0, 1].map((side) => ({ leaves: [positive(3, 7), positive(7), f(3, 7)], attrs: { fn, side } }))),
    { leaves: [f(3, 5, 4), f(5, 1), f(3, 5, 4)], attrs: { fn: "div", side: 1 } },
    { leaves: [{ shape: [2, 3], lo: 0.5, hi: 0.5 }, { shape: [3], lo: 0.5, hi: 0.5 }, f(2, 3)], attrs: { fn: "minimum", side: 0 } }, // ties
  ],
  reduce: REDUCE_FNS.map((fn) => ({ leaves: [f(3, 5, 7)], attrs: { fn } })),
  reduce_bwd: [
    { leaves: [f(3, 5, 1)], attrs: { fn: "sum", C: 7 } }, // sum and mean: dy alone
    { leaves: [f(3, 5, 1)], attrs: { fn: "mean", C: 7 } },
    ...REDUCE_FNS.map((fn) => ({
      leaves: [f(3, 5, 7), f(3, 5, 1)],
      build: (b: GraphBuilder, [x, dy]: Value[]) => {
        const [y] = add(b, "reduce", [x], { fn });
        add(b, "reduce_bwd", [x, y, dy], { fn });
      },
    })),
    {
      leaves: [{ shape: [2, 4], lo: 0.5, hi: 0.5 }, f(2, 1)], // every element ties for the max
      build: (b: GraphBuilder, [x, dy]: Value[]) => {
        const [y] = add(b, "reduce", [x], { fn: "max" });
        add(b, "reduce_bwd", [x, y, dy], { fn: "max" });
      },
    },
  ],
  gelu: { leaves: [{ shape: [37], lo: -4, hi: 4 }] },
  gelu_bwd: { leaves: [{ shape: [37], lo: -4, hi: 4 }, f(37)] },
  attention: [
    { leaves: [f(1, 2, 5, 4), f(1, 1, 5, 4), f(1, 1, 5, 4)] }, // multi-query: both query heads read one KV head
    { leaves: [f(2, 7, 3), f(2, 7, 3), f(2, 7, 3)] },
    ...ATTENTION_VARIANTS.map(({ q, kv, causal, mask }) => ({
      leaves: [f(...q), f(...kv), f(...kv), ...(mask ? [mask] : [])],
      attrs: attentionAttrs(causal),
    })),
  ],
  attention_bwd: [
    {
      leaves: [f(1, 2, 5, 4), f(1, 1, 5, 4), f(1, 1, 5, 4), f(1, 2, 5, 4)],
      build: (b, [q, k, v, dy]) => {
        const [y, lse] = add(b, "attention", [q, k, v]);
        add(b, "attention_bwd", [q, k, v, y, lse, dy]);
      },
    },
    ...ATTENTION_VARIANTS.map(({ q, kv, causal, mask, learned }) => ({
      leaves: [f(...q), f(...kv), f(...kv), f(...q), ...(mask ? [mask] : [])],
      build: (b: GraphBuilder, [qv, k, v, dy, m]: Value[]) => {
        const attrs = attentionAttrs(causal);
        const masked = m ? [m] : [];
        const [y, lse] = add(b, "attention", [qv, k, v, ...masked], attrs);
        add(b, "attention_bwd", [qv, k, v, y, lse, dy, ...masked], learned ? { ...attrs, maskGrad: true } : attrs);
      },
    })),
  ],
  // Drawn at the driver's step (ADAM.t); the largest seed. (The index's high half is 0 below 2^32 elements.)
  dropout: [
    { leaves: [f(3000)], attrs: { p: 0.3, seed: 5 } },
    { leaves: [f(7, 9)], attrs: { p: 0.9, seed: 4294967295 } },
  ],
  cross_entropy: { leaves: [f(5, 7), ids(7, 5)] },
  cross_entropy_bwd: { leaves: [f(5, 7), ids(7, 5), f()] },
  linear_cross_entropy: [
    { leaves: [f(5, 4), f(7, 4), ids(7, 5)], attrs: { tb: true, rows: 2, cols: 3 } }, // tiles that do not divide
    { leaves: [f(5, 4), f(4, 7), ids(7, 5)], attrs: { tb: false, rows: 5, cols: 7 } },
  ],
  linear_cross_entropy_bwd: [
    {
      leaves: [f(5, 4), f(7, 4), ids(7, 5), f()],
      build: (b, [x, w, t, dloss]) => {
        const tiles = { tb: true, rows: 2, cols: 3 };
        const [, lse] = add(b, "linear_cross_entropy", [x, w, t], tiles);
        add(b, "linear_cross_entropy_bwd", [x, w, t, lse, dloss], tiles);
      },
    },
    // The planner may shrink the tile to fit a budget: the loss and gradients stay bitwise the same
    // (the kernels sum over fixed units of 256 columns and 128 rows, whatever the tile).
    ...[
      [300, 600],
      [128, 256],
      [256, 512],
      [200, 400],
    ].map(([rows, cols]) => ({
      leaves: [f(300, 8), f(600, 8), ids(600, 300), f()],
      build: (b: GraphBuilder, [x, w, t, dloss]: Value[]) => {
        const tiles = { tb: true, rows, cols };
        const [, lse] = add(b, "linear_cross_entropy", [x, w, t], tiles);
        add(b, "linear_cross_entropy_bwd", [x, w, t, lse, dloss], tiles);
      },
      same: { group: "linear_cross_entropy tiles", seed: 77 },
    })),
  ],
  // Data movement serves i32 as well as f32 (the kernels move 4-byte words).
  transpose: [
    { leaves: [f(2, 3, 4)], attrs: { perm: [2, 0, 1] } },
    { leaves: [ids(1000, 2, 3, 4)], attrs: { perm: [2, 0, 1] } },
  ],
  split: [
    { leaves: [f(3, 7)], attrs: { sizes: [2, 4, 1] } },
    { leaves: [ids(1000, 3, 7)], attrs: { sizes: [2, 4, 1] } },
  ],
  concat: [
    { leaves: [f(3, 2), f(3, 4), f(3, 1)] },
    { leaves: [ids(1000, 3, 2), ids(1000, 3, 4), ids(1000, 3, 1)] },
    { leaves: [f(2, 3, 5), f(2, 1, 5)], attrs: { axis: 1 } },
  ],
  grad_norm: { leaves: [f(7), f(3, 5)] },
  // Copies: the host region and the device, each waited for as a plan does before a reader.
  chunk_h2d: { leaves: [onHost(f(29))], build: (b, [x]) => void add(b, "wait", add(b, "chunk_h2d", [x], { elements: 29 })) },
  copy_d2h: { leaves: [f(3, 9)], build: (b, [x]) => void add(b, "wait", add(b, "copy_d2h", [x])) },
  wait: {
    leaves: [onHost(f(29))],
    build: (b, [x]) => void add(b, "scale", add(b, "wait", add(b, "chunk_h2d", [x], { elements: 29 })), { s: 2 }),
  },
  adamw: [
    { leaves: [f(3, 5), f(3, 5), f(3, 5), positive(3, 5)], attrs: { decay: true } },
    {
      // An offloaded chunk's update: the gradient goes to the host, and AdamW runs there on host copies.
      leaves: [onHost(f(3, 5)), f(3, 5), onHost(f(3, 5)), onHost(positive(3, 5))],
      build: (b, [p, g, m, v]) => void add(b, "adamw", [p, ...add(b, "copy_d2h", [g]), m, v], { decay: false }, "host"),
    },
  ],
  rope: [
    { leaves: [f(2, 5, 6)], attrs: { base: 10000 } },
    { leaves: [f(2, 5, 6)], attrs: { base: 10000, inverse: true } },
  ],
  silu: { leaves: [{ shape: [37], lo: -4, hi: 4 }] },
  silu_bwd: { leaves: [{ shape: [37], lo: -4, hi: 4 }, f(37)] },
  all_reduce: [
    { leaves: [f(3, 5)], attrs: { reduce: "sum" } },
    { leaves: [f(3, 5)], attrs: { reduce: "max" } },
  ],
  // ZeRO at one data-parallel rank: the shard is the whole chunk, here one parameter.
  zero_adamw: [
    { leaves: [f(15), positive(15), f(3, 5), f(3, 5)], attrs: { chunk: 0, count: 1, shard: 15, offsets: [0], decay: [1], clip: false } },
    // ZeRO 2: the gradient is the chunk's shard, one element longer here (padding the update leaves alone).
    {
      leaves: [f(16), positive(16), f(3, 5), f(16)],
      attrs: { chunk: 0, count: 1, shard: 16, offsets: [0], decay: [0], clip: false, gradShard: true },
    },
    // ZeRO 3: the parameter is the rank's shard of the chunk too.
    {
      leaves: [f(15), positive(15), f(15), f(15)],
      attrs: { chunk: 0, count: 1, shard: 15, offsets: [0], sizes: [15], decay: [1], clip: false, gradShard: true, paramShard: true },
    },
    {
      // ZeRO 3 with the chunk offloaded: the gradient shard goes to the host, and the update runs there.
      leaves: [onHost(f(15)), onHost(positive(15)), onHost(f(15)), f(15)],
      build: (b, [m, v, p, g]) =>
        void add(
          b,
          "zero_adamw",
          [m, v, p, ...add(b, "copy_d2h", [g])],
          { chunk: 0, count: 1, shard: 15, offsets: [0], sizes: [15], decay: [0], clip: false, gradShard: true, paramShard: true },
          "host",
        ),
    },
  ],
  zero_gather: { leaves: [f(3, 5)], attrs: { chunk: 0, shard: 15, ranks: 1 } },
  zero_all_gather: { leaves: [f(15)], attrs: { chunk: 0, shard: 15, ranks: 1 } },
  zero_pack: { leaves: [f(3, 5), f(7)], attrs: { chunk: 0, shard: 32, ranks: 1, offsets: [0, 16] } },
  zero_reduce_scatter: { leaves: [f(32)], attrs: { chunk: 0, shard: 32, ranks: 1 } },
  all_gather: [
    { leaves: [f(3, 4)], attrs: { ranks: 1 } },
    { leaves: [f(1, 4)], attrs: { ranks: 1 } }, // one row: no workspace
  ],
  reduce_scatter: { leaves: [f(3, 4)], attrs: { ranks: 1 } },
  broadcast: { leaves: [f(2, 3)], attrs: { root: 0 } },
  shard_slice: { leaves: [f(3, 4)], attrs: { ranks: 1 } },
  embedding_vp: { leaves: [f(7, 5), ids(6, 2, 3)], attrs: vp },
  embedding_vp_bwd: { leaves: [ids(6, 9), f(9, 5)], attrs: { V: 7 } },
  cross_entropy_vp_max: { leaves: [f(4, 7)], attrs: vp },
  cross_entropy_vp_sums: { leaves: [f(4, 7), ids(6, 4)], build: (b, x) => void vpChain(b, x) },
  cross_entropy_vp: {
    leaves: [f(4, 7), ids(6, 4)],
    build: (b, x) => {
      const { logits, targets, max, sums } = vpChain(b, x);
      add(b, "cross_entropy_vp", [logits, targets, max, sums]);
    },
  },
  cross_entropy_vp_bwd: {
    leaves: [f(4, 7), ids(6, 4), f()],
    build: (b, [l, t, dloss]) => {
      const { logits, targets, max, sums } = vpChain(b, [l, t]);
      add(b, "cross_entropy_vp_bwd", [logits, targets, max, sums, dloss], vp);
    },
  },
  sum_squares: { leaves: [f(7), f(3, 5)] },
  norm_from_squares: { leaves: [positive(1), positive(1), positive(1)] },
  // Data movement along any axis, f32 and i32; the gradients add repeated indices and broadcast copies.
  slice: [
    { leaves: [f(3, 7, 2)], attrs: { dim: 1, start: 2, length: 4 } },
    { leaves: [ids(1000, 5, 3)], attrs: { dim: 0, start: 1, length: 3 } },
  ],
  pad: [
    { leaves: [f(2, 3, 4)], attrs: { before: [1, 2], after: [0, 3], value: -0.5 } },
    { leaves: [f(2, 3, 5)], attrs: { before: [-1, 0, 1], after: [0, -2, 1], value: 0 } }, // crops as well
    { leaves: [ids(1000, 3, 4)], attrs: { before: [2], after: [1], value: 7 } },
  ],
  expand: [
    { leaves: [f(3, 1, 4)], attrs: { shape: [2, 3, 5, 4] } },
    { leaves: [ids(1000, 1, 3)], attrs: { shape: [4, 3] } },
  ],
  expand_bwd: [
    { leaves: [f(2, 3, 5, 4)], attrs: { shape: [3, 1, 4] } },
    { leaves: [f(4, 6)], attrs: { shape: [1] } },
  ],
  index_select: [
    { leaves: [f(3, 5, 4), ids(5, 7)], attrs: { dim: 1 } },
    { leaves: [ids(1000, 6, 2), ids(6, 2, 3)], attrs: { dim: 0 } }, // i32 rows, a 2-D index
  ],
  index_select_bwd: [
    { leaves: [ids(5, 7), f(3, 7, 4)], attrs: { dim: 1, D: 5 } },
    { leaves: [ids(4, 2, 3), f(2, 3, 2)], attrs: { dim: 0, D: 4 } },
  ],
  gather: [
    { leaves: [f(3, 5, 4), ids(5, 3, 6, 4)], attrs: { dim: 1 } },
    { leaves: [f(4, 7), ids(7, 4, 2)], attrs: { dim: 1 } },
  ],
  gather_bwd: [
    { leaves: [ids(5, 3, 6, 4), f(3, 6, 4)], attrs: { dim: 1, D: 5 } },
    { leaves: [ids(4, 3, 7), f(3, 7)], attrs: { dim: 0, D: 4 } },
  ],
  // Generated kernels (codegen/fused_kernel.ts): broadcast inputs, a constant, comparisons, several
  // outputs; a trailing reduction with an output of its row loop; the backward's elementwise ops, over
  // too few rows to loop by row.
  fused: [
    {
      // 66 rows of 7: the kernel loops over rows, so the inputs broadcast along them are read by row (x2),
      // by row modulo their size (x3) and by column (x1).
      leaves: [f(2, 33, 7), f(7), f(2, 33, 1), f(33, 1)],
      attrs: {
        program:
          "fill{shape=[] value=0.5}(); mul(x0,x1); add(s1,s0); unary{fn=tanh}(s2); binary{fn=sub}(s3,x2); " +
          "binary{fn=gt}(s4,s0); where(s5,s4,x0); scale{s=0.25}(s6); unary{fn=pow p=3}(s7); binary{fn=add}(s8,x3)",
        outs: [3, 9],
      },
    },
    { leaves: [f(3, 5, 7)], attrs: { program: "unary{fn=square}(x0); reduce{fn=mean}(s0)", outs: [1] } },
    // Through a reshape that changes the last axis: the bias broadcasts over [12, 8] (x1), the weight over
    // [4, 24] (x2), and the mean sums rows of 24.
    {
      leaves: [f(12, 8), f(8), f(24)],
      attrs: { program: "add(x0,x1); reshape{shape=[4,24]}(s0); gelu(s1); mul(s2,x2); reduce{fn=mean}(s3)", outs: [0, 3, 4] },
    },
    { leaves: [f(3, 5, 7)], attrs: { program: "scale{s=2}(x0); silu(s0); reduce{fn=max}(s1)", outs: [1, 2] } },
    {
      leaves: [f(3, 5, 1), f(3, 5, 7), f(3, 5, 7)],
      attrs: {
        program:
          "reduce_bwd{fn=mean C=7}(x0); unary_bwd{fn=square}(x1,s0); add(x2,s1); gelu(x1); gelu_bwd(s3,x2); silu_bwd(x1,s4); " +
          "binary_bwd{fn=mul side=1}(x1,x0,s5)",
        outs: [2, 6],
      },
    },
  ],
  // A mask made by a comparison, as models make them; each operand broadcast in turn.
  where: [
    {
      leaves: [f(3, 7), f(3, 7), f(7)],
      build: (b, [x, a, other]) =>
        void add(b, "where", [...add(b, "binary", [x, ...add(b, "fill", [], { shape: [], value: 0 })], { fn: "gt" }), a, other]),
    },
    {
      leaves: [f(3, 1), f(), f(3, 5)],
      build: (b, [x, a, other]) =>
        void add(b, "where", [...add(b, "binary", [x, ...add(b, "fill", [], { shape: [], value: 0 })], { fn: "lt" }), a, other]),
    },
  ],
};

// ---- references the interpreter does not give ------------------------------------------------------

type Reference<K extends OpName> = (n: NodeOf<K>, x: Float64Array[]) => Tensor[];
const same = (_n: Node, [x]: Float64Array[]): Tensor[] => [x.slice()];
const rows = (x: Float64Array, cols: number) => Array.from({ length: x.length / cols }, (_, r) => x.subarray(r * cols, (r + 1) * cols));
const lastDim = (v: Value) => v.shape[v.shape.length - 1];

/** At rank 0 of 1: copies are the identity, and the vocabulary-parallel ops see the whole vocabulary. */
const REFERENCES: { [K in OpName]?: Reference<K> } = {
  chunk_h2d: same,
  copy_d2h: same,
  wait: same,
  all_reduce: same,
  // One parameter's AdamW: the moments it leaves.
  zero_adamw: (n, [m, v, p, g]) => {
    const k = p.length; // the parameter's elements; a shard's padding keeps its moments
    const [, m2, v2] = K.adamw(p, g.subarray(0, k), m.subarray(0, k), v.subarray(0, k), ADAM, n.attrs.decay[0] === 1, undefined);
    return [Float64Array.from([...m2, ...m.subarray(k)]), Float64Array.from([...v2, ...v.subarray(k)])];
  },
  zero_gather: same,
  zero_all_gather: same,
  zero_pack: (n, grads) => {
    const out = new Float64Array(n.attrs.ranks * n.attrs.shard);
    grads.forEach((g, k) => out.set(g, n.attrs.offsets[k]));
    return [out];
  },
  zero_reduce_scatter: same,
  all_gather: same,
  reduce_scatter: same,
  broadcast: same,
  shard_slice: same,
  embedding_vp: (n, [table, idx]) => [K.embedding(table, n.inputs[0].shape[0], lastDim(n.inputs[0]), Int32Array.from(idx))],
  embedding_vp_bwd: (n, [idx, dy]) => [K.embeddingBwd(Int32Array.from(idx), dy, n.attrs.V as number, lastDim(n.inputs[1]))],
  cross_entropy_vp_max: (n, [x]) => [
    Float64Array.from(rows(x, lastDim(n.inputs[0])), (r) => Math.max(...r.subarray(0, n.attrs.vocab as number))),
  ],
  cross_entropy_vp_sums: (n, [x, t, max]) => {
    const r = rows(x, lastDim(n.inputs[0]));
    const sums = r.map((row, i) => row.subarray(0, n.attrs.vocab as number).reduce((s, l) => s + Math.exp(l - max[i]), 0));
    return [Float64Array.from([...sums, ...r.map((row, i) => row[t[i]])])];
  },
  cross_entropy_vp: (_n, [, , max, sums]) => {
    const N = max.length;
    return [Float64Array.of(max.reduce((s, m, i) => s + m + Math.log(sums[i]) - sums[N + i], 0) / N)];
  },
  cross_entropy_vp_bwd: (n, [x, t, max, sums, dloss]) => {
    const V = lastDim(n.inputs[0]),
      vocab = n.attrs.vocab as number,
      N = max.length;
    return [
      Float64Array.from(x, (l, k) => {
        const i = Math.floor(k / V),
          j = k % V;
        return j >= vocab ? 0 : (dloss[0] * (Math.exp(l - max[i]) / sums[i] - (t[i] === j ? 1 : 0))) / N;
      }),
    ];
  },
  sum_squares: (_n, xs) => [Float64Array.of(xs.reduce((s, x) => s + x.reduce((a, v) => a + v * v, 0), 0))],
  norm_from_squares: (_n, xs) => [Float64Array.of(Math.sqrt(xs.reduce((s, x) => s + x[0], 0)))],
};

/** The hyperparameters op_kernels_main.h gives AdamW, in float64. */
const ADAM: AdamOptions = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, t: 3, gradClip: 0 };

// ---- graphs, layouts, data --------------------------------------------------------------------------

interface Built {
  name: string;
  op: OpName;
  graph: Graph;
  leaves: Map<number, Tensor>;
  mem: MemoryPlan;
  arenaBytes: number;
  hostBytes: number;
  tol: { atol: number; rtol: number };
  /** The group of cases whose outputs must be bitwise equal. */
  same?: string;
}

const THREADS = 2; // op_kernels_main.h's Ctx::threads: workspaces are sized for it
const align = (bytes: number) => Math.ceil(Math.max(bytes, 1) / 64) * 64;

function buildCase(op: OpName, c: Case, name: string, seed: number): Built {
  const b = new GraphBuilder();
  const random = mulberry32(seed);
  const leaves = new Map<number, Tensor>();
  const hostLeaves = new Set<number>();
  const x = c.leaves.map((leaf, i) => {
    const v = b.value("input", [], { name: `x${i}`, shape: leaf.shape, dtype: leaf.ids ? "i32" : "f32" });
    const n = numel(leaf.shape);
    const lo = leaf.lo ?? -1,
      hi = leaf.hi ?? 1;
    leaves.set(
      v.id,
      leaf.ids
        ? Int32Array.from({ length: n }, () => Math.floor(random() * leaf.ids!))
        : Float64Array.from({ length: n }, (_, k) => Math.fround(leaf.values ? leaf.values(k) : lo + (hi - lo) * random())),
    );
    if (leaf.host) hostLeaves.add(v.id);
    return v;
  });
  if (c.build) c.build(b, x);
  else add(b, op, x, c.attrs, c.placement);
  const graph = b.build();
  if (!graph.nodes.some((n) => n.op === op)) throw new Error(`case ${name} has no ${op} node`);
  return { name, op, graph, leaves, ...layout(graph, hostLeaves), tol: c.tol ?? { atol: 1e-5, rtol: 1e-4 }, same: c.same?.group };
}

/**
 * Every value its own range, 64-byte aligned, and every node its planned workspace: no reuse, so each
 * result can be read after the run. Outputs that always share an input's storage (in-place AdamW,
 * `wait`, `broadcast`) share it here too; copies to the host and host leaves live in the host region.
 */
function layout(g: Graph, hostLeaves: ReadonlySet<number>): { mem: MemoryPlan; arenaBytes: number; hostBytes: number } {
  const valueOffset = new Map<number, number>();
  const hostValues = new Set<number>();
  const workspace = new Map<number, [number, number]>();
  let arena = 0,
    host = 0;
  for (const n of g.nodes) {
    const aliases = opDef(n.op).aliases ?? {};
    n.outputs.forEach((v, i) => {
      const shared = aliases[i] === undefined ? undefined : n.inputs[aliases[i]];
      if (shared) {
        valueOffset.set(v.id, valueOffset.get(shared.id)!);
        if (hostValues.has(shared.id)) hostValues.add(v.id);
      } else if (hostLeaves.has(v.id) || n.op === "copy_d2h") {
        valueOffset.set(v.id, host);
        hostValues.add(v.id);
        host += align(valueBytes(v));
      } else {
        valueOffset.set(v.id, arena);
        arena += align(valueBytes(v));
      }
    });
    const ws = workspaceBytes(n.op, n.inputs, n.attrs, THREADS);
    if (ws > 0) {
      workspace.set(n.id, [arena, ws]);
      arena += align(ws);
    }
  }
  const breakdown: Breakdown = {
    parameters: 0,
    optimizer_states: 0,
    gradients: 0,
    activations: arena,
    workspace: 0,
    inputs: 0,
    fragmentation: 0,
  };
  const mem: MemoryPlan = {
    valueOffset,
    hostValues,
    diskValues: new Set(),
    diskIo: new Map(),
    workspace,
    buffers: [],
    peak: arena,
    dynamicBytes: arena,
    breakdown,
    peakPosition: 0,
  };
  return { mem, arenaBytes: arena, hostBytes: host };
}

/** Every value's float64 reference: the interpreter's, or this file's for the ops it does not model. */
function reference(c: Built): Map<number, Tensor> {
  const env = new Map<number, Tensor>(c.leaves);
  const get = (v: Value) => env.get(v.id)!;
  for (const n of c.graph.nodes) {
    if (n.op === "input") continue;
    const own = REFERENCES[n.op] as Reference<OpName> | undefined;
    const outs = own
      ? own(
          n,
          n.inputs.map((v) => Float64Array.from(get(v))),
        )
      : evalNode(n, get, { params: new Map(), inputs: {}, adam: ADAM });
    n.outputs.forEach((v, i) => env.set(v.id, outs[i]));
  }
  return env;
}

const ALL: Built[] = (Object.entries(CASES) as [OpName, Case | Case[] | typeof NO_KERNEL][]).flatMap(([op, cases]) => {
  if (cases === NO_KERNEL) return [];
  const list = Array.isArray(cases) ? cases : [cases];
  return list.map((c, k) => buildCase(op, c, list.length > 1 ? `${op}#${k + 1}` : op, c.same?.seed ?? 1000 + k));
});

// ---- one binary per backend -------------------------------------------------------------------------

interface Harness {
  name: string;
  backend: Backend;
  emulate: boolean;
  calls: NodeCalls;
  /** What the generated code includes before the cases: the backend template's headers. */
  prelude: string[];
  /** The template part that renders generated (fused) kernels. */
  fusedTemplate: string;
  /** The runtime the cases link: the backend's kernels and what they call, no session. */
  sources: () => string[];
}

const runtime = (...parts: string[]) => path.join(repoRoot, "runtime", ...parts);
const listed = (dir: string, pattern: RegExp) =>
  readdirSync(runtime(dir))
    .filter((f) => pattern.test(f))
    .sort()
    .map((f) => runtime(dir, f));
const commonSources = () => [
  runtime("core", "transfer_engine.cpp"),
  runtime("core", "worker.cpp"),
  runtime("core", "disk_pipeline.cpp"),
  runtime("core", "host_threads.cpp"),
  runtime("core", "disk_tier.cpp"),
  runtime("comm", "comm_single.cpp"),
];

const CPU: Harness = {
  name: "CPU",
  backend: "cpu",
  emulate: false,
  calls: kernelCalls,
  prelude: [
    "#include <algorithm>",
    "#include <cmath>",
    "#include <cstdint>",
    '#include "core/kernel_math.h"',
    '#include "core/plan.h"',
    '#include "cpu/kernels.h"',
  ],
  fusedTemplate: "cpu/fused_kernels.njk",
  sources: () => [...listed("cpu", /^kernels.*\.cpp$/), ...commonSources()],
};

const CUDA_EMULATED: Harness = {
  name: "CUDA (emulated)",
  backend: "cuda",
  emulate: true,
  calls: cudaKernelCalls("fp32"),
  prelude: [
    "#define STOW_OPK_CUDA 1",
    "#include <cstdint>",
    '#include "cuda/cuda_kernels.h"',
    '#include "cuda/launch.h"',
    '#include "core/kernel_math.h"',
    '#include "core/plan.h"',
  ],
  fusedTemplate: "cuda/fused_kernels.njk",
  // As test/system/cuda_kernels.test.ts links them: the kernels, the streams and the cuBLAS binding (to the
  // emulation's stand-in), the emulation, and the CPU's AdamW for the host worker.
  sources: () => [
    ...listed("cuda", /^kernels_.*\.cu$/),
    runtime("cuda", "runtime.cu"),
    runtime("cuda", "cublas.cu"),
    runtime("cuda", "node_uses.cu"),
    ...listed(path.join("cuda", "emulate"), /\.cpp$/),
    runtime("cpu", "kernels_adamw.cpp"),
    ...commonSources(),
  ],
};

/** The emulated CUDA target needs Boost.Context (fibers for CUDA threads). */
const emulationAvailable = existsSync("/usr/include/boost/context/fiber.hpp");

function caseFunction(i: number, c: Built, h: Harness): { source: string; lines: string[] } {
  const view = programView(c.name, { graph: c.graph, memory: c.mem, batch: 1, seq: 1 }, h.calls);
  const lines = view.nodes.flatMap((n) => n.lines);
  // Generated kernels are named by value id, which repeats across cases: each case's in a namespace.
  const fused = c.graph.nodes.flatMap((n) => (n.op === "fused" ? [fusedKernelView(n, c.mem)] : []));
  const source = [
    `// ${c.name}`,
    ...(fused.length > 0 ? [`namespace kernels_${i} {`, renderFusedKernels(h.fusedTemplate, fused), "}"] : []),
    `void case_${i}(Ctx& c, const StepArgs& a) {`,
    ...(fused.length > 0 ? [`  using namespace kernels_${i};`] : []),
    "  (void)a;",
    "  [[maybe_unused]] float gscale = 1.0f;",
    `  [[maybe_unused]] int64_t tk[${Math.max(1, view.tickets)}] = {};`,
    ...view.nodes.flatMap((n) => [
      `  c.node = "${n.label}"; c.ws_offset = ${n.wsOffset}; c.ws_bytes = ${n.wsBytes}; c.host_node = ${n.hostNode};`,
      ...n.lines.map((l) => `  ${l}`),
    ]),
    "  c.host_node = false;",
    "}",
  ].join("\n");
  return { source, lines };
}

function driverSource(h: Harness): string {
  const cases = ALL.map((c, i) => caseFunction(i, c, h).source);
  return [
    `// The op kernel cases of test/system/op_kernels.test.ts for the ${h.name} backend.`,
    ...h.prelude,
    "#define F(off) reinterpret_cast<float*>(c.arena + (off))",
    "#define I(off) reinterpret_cast<int32_t*>(c.arena + (off))",
    "#define H(off) reinterpret_cast<float*>(c.host + (off))",
    "namespace {",
    "using stow::Ctx;",
    "using stow::StepArgs;",
    ...cases,
    `constexpr int kCaseCount = ${ALL.length};`,
    `void (*const kCases[])(Ctx&, const StepArgs&) = {${ALL.map((_, i) => `case_${i}`).join(", ")}};`,
    `const char* const kCaseNames[] = {${ALL.map((c) => JSON.stringify(c.name)).join(", ")}};`,
    "}  // namespace",
    '#line 1 "test/native/op_kernels_main.h"',
    readFileSync(path.join(repoRoot, "test/native/op_kernels_main.h"), "utf8"),
  ].join("\n");
}

const dir = mkdtempSync(path.join(tmpdir(), "stow-op-kernels-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The cases' inputs, one file: per case, arena and host sizes (int64), then both images. */
function inputImages(): Buffer {
  const parts: Buffer[] = [];
  for (const c of ALL) {
    const sizes = Buffer.alloc(16);
    sizes.writeBigInt64LE(BigInt(c.arenaBytes), 0);
    sizes.writeBigInt64LE(BigInt(c.hostBytes), 8);
    const arena = Buffer.alloc(c.arenaBytes),
      host = Buffer.alloc(c.hostBytes);
    for (const [id, data] of c.leaves) {
      const region = c.mem.hostValues.has(id) ? host : arena;
      const at = c.mem.valueOffset.get(id)!;
      const view =
        data instanceof Int32Array
          ? new Int32Array(region.buffer, region.byteOffset + at, data.length)
          : new Float32Array(region.buffer, region.byteOffset + at, data.length);
      view.set(data);
    }
    parts.push(sizes, arena, host);
  }
  return Buffer.concat(parts);
}

/** Each case's arena and host images after the run. */
function outputImages(file: string): { arena: Buffer; host: Buffer }[] {
  const all = readFileSync(file);
  let at = 0;
  return ALL.map(() => {
    const arenaBytes = Number(all.readBigInt64LE(at)),
      hostBytes = Number(all.readBigInt64LE(at + 8));
    // Copied out, so typed-array views of it are aligned.
    const arena = Buffer.from(all.subarray(at + 16, at + 16 + arenaBytes));
    const host = Buffer.from(all.subarray(at + 16 + arenaBytes, at + 16 + arenaBytes + hostBytes));
    at += 16 + arenaBytes + hostBytes;
    return { arena, host };
  });
}

/** Every computed value against its reference: one line per value that differs, its worst element. */
function mismatches(c: Built, images: { arena: Buffer; host: Buffer }): string[] {
  const want = reference(c);
  const out: string[] = [];
  for (const n of c.graph.nodes) {
    if (n.op === "input") continue;
    n.outputs.forEach((v, i) => {
      const region = c.mem.hostValues.has(v.id) ? images.host : images.arena;
      const at = region.byteOffset + c.mem.valueOffset.get(v.id)!;
      const got =
        v.dtype === "i32" ? new Int32Array(region.buffer, at, numel(v.shape)) : new Float32Array(region.buffer, at, numel(v.shape));
      const expected = want.get(v.id)!;
      let worst = -1,
        excess = 0;
      for (let k = 0; k < got.length; k++) {
        const err = got[k] === expected[k] ? 0 : Math.abs(got[k] - expected[k]); // equal infinities match
        const allowed = c.tol.atol + c.tol.rtol * Math.abs(expected[k]);
        if (!(err <= allowed) && (Number.isNaN(err) || err / allowed > excess))
          [worst, excess] = [k, Number.isNaN(err) ? Infinity : err / allowed];
      }
      if (worst >= 0)
        out.push(`${c.name}: ${n.op} output ${i}, element ${worst} of ${got.length}: ${got[worst]}, expected ${expected[worst]}`);
    });
  }
  return out;
}

/** Cases of a `same` group against the group's first: the names of outputs that differ in any bit. */
function bitwiseDifferences(images: { arena: Buffer; host: Buffer }[]): string[] {
  const bytesOf = (i: number) =>
    ALL[i].graph.nodes
      .filter((n) => n.op !== "input")
      .flatMap((n) =>
        n.outputs.map((v) => {
          const region = ALL[i].mem.hostValues.has(v.id) ? images[i].host : images[i].arena;
          const at = ALL[i].mem.valueOffset.get(v.id)!;
          return { name: `${n.op} output ${n.outputs.indexOf(v)}`, bytes: region.subarray(at, at + valueBytes(v)) };
        }),
      );
  const first = new Map<string, number>();
  const out: string[] = [];
  ALL.forEach((c, i) => {
    if (c.same === undefined) return;
    const j = first.get(c.same);
    if (j === undefined) return void first.set(c.same, i);
    const [want, got] = [bytesOf(j), bytesOf(i)];
    got.forEach((o, k) => {
      if (!o.bytes.equals(want[k].bytes)) out.push(`${c.name}: ${o.name} differs from ${ALL[j].name}'s`);
    });
  });
  return out;
}

describe("every op's kernel, on every backend", () => {
  test("every op that runs a kernel has a case, and each case runs its op's kernel", () => {
    const ops = Object.keys(OPS) as OpName[];
    expect(ops.filter((op) => runsKernel(op) !== (CASES[op] !== NO_KERNEL))).toEqual([]);
    for (const h of [CPU, CUDA_EMULATED])
      for (const c of ALL) {
        const lines = programView(c.name, { graph: c.graph, memory: c.mem, batch: 1, seq: 1 }, h.calls)
          .nodes.filter((n) => n.label.startsWith(`${c.op} `))
          .flatMap((n) => n.lines);
        expect(lines.length, `${h.name} ${c.name}`).toBeGreaterThan(0);
      }
  });

  test("every kernel the backends call is declared once, in runtime/core/kernel_list.h", () => {
    const list = readFileSync(runtime("core", "kernel_list.h"), "utf8");
    const declared = new Set([...list.matchAll(/^STOW_(?:GEMM_|NORM_)?KERNEL\((\w+),/gm)].map((m) => m[1]));
    expect(declared.size).toBeGreaterThan(40);
    const called = new Set(
      ALL.flatMap((c) => [CPU, CUDA_EMULATED].flatMap((h) => caseFunction(0, c, h).lines)).flatMap((line) =>
        [...line.matchAll(/stow::(?:cuda::)?(\w+)\(/g)].map((m) => m[1]),
      ),
    );
    // node_uses is the CUDA backend's declaration of a node's arena ranges for the race checker, not a kernel.
    expect([...called].filter((k) => !declared.has(k) && k !== "node_uses")).toEqual([]);
  });

  for (const h of [CPU, CUDA_EMULATED]) {
    const skip = h.emulate && !emulationAvailable;
    test.skipIf(skip)(`${h.name}: each kernel matches the float64 reference`, async () => {
      const built = await buildPlan({ planCpp: driverSource(h), backend: h.backend, emulate: h.emulate, runtimeSources: h.sources() });
      const inFile = path.join(dir, `${h.backend}.in`),
        outFile = path.join(dir, `${h.backend}.out`);
      writeFileSync(inFile, inputImages());
      const run = spawnSync(built.trainBinPath, [inFile, outFile], { cwd: repoRoot, encoding: "utf8", timeout: 300_000 });
      expect(run.status, run.stderr).toBe(0);
      const lines = run.stdout.trim().split("\n");
      expect(lines.filter((l) => !l.startsWith("ok "))).toEqual([]);
      expect(lines.length).toBe(ALL.length);
      const images = outputImages(outFile);
      expect(ALL.flatMap((c, i) => mismatches(c, images[i]))).toEqual([]);
      expect(bitwiseDifferences(images)).toEqual([]);
    });
  }
});
