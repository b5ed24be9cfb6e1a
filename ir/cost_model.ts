// How long a training step takes, predicted before it runs: each node's compute time from a machine
// profile (or from times measured in a profiled warm-up), and the offload schedule's copies and host
// AdamW played out on their own queues, as the transfer engine runs them. The planner uses it to choose
// between schedules that fit; the plan report shows it next to measured times.
import { nodeFlops } from "./flops.ts";
import { type Graph, type Node, type Value, formatShape, numel, valueBytes } from "./types.ts";

export interface Machine {
  /** Sustained FLOP/s of products (matmul, attention). */
  matmulFlops: number;
  /** Bytes per second that elementwise and data-movement kernels stream (reads plus writes). */
  memoryBandwidth: number;
  /** Host-device link, bytes per second in each direction (full duplex, as PCIe is); copies of one direction take turns. */
  linkBandwidth: number;
  /** Host memory bandwidth for AdamW on offloaded chunks. */
  hostBandwidth: number;
}

/**
 * This machine's two cores, roughly (bench/RESULTS.md measures the sgemm peak at about 100 GFLOP/s with
 * the right OpenBLAS kernels); an unthrottled link is a memcpy.
 */
export const CPU_DEFAULTS: Machine = { matmulFlops: 100e9, memoryBandwidth: 8e9, linkBandwidth: 8e9, hostBandwidth: 8e9 };

/** Measured seconds per node signature (op, shapes, attributes): what a profiled warm-up found. */
export type MeasuredTimes = ReadonlyMap<string, number>;

/** Identifies a node's work across plans: the same op on the same shapes costs the same. */
export function nodeSignature(n: Node): string {
  const attrs = Object.entries(n.attrs).filter(([k]) => k !== "name" && k !== "recompute").map(([k, v]) => `${k}=${v}`).join(",");
  return `${n.op}(${n.inputs.map((v) => formatShape(v.shape)).join(",")}){${attrs}}`;
}

const PRODUCTS = new Set(["matmul", "attention", "attention_bwd"]);
/** Ops that run no kernel. */
const FREE = new Set(["param", "opt_state", "input", "reshape", "chunk_view", "wait", "chunk_h2d", "copy_d2h"]);
/** AdamW streams p, g, m, v in and p, m, v out. */
const ADAMW_BYTES_PER_ELEMENT = 28;

export function nodeSeconds(n: Node, m: Machine, measured?: MeasuredTimes): number {
  if (FREE.has(n.op)) return 0;
  const known = measured?.get(nodeSignature(n));
  if (known !== undefined) return known;
  if (PRODUCTS.has(n.op)) return nodeFlops(n) / m.matmulFlops;
  const bytes = [...n.inputs, ...n.outputs].reduce((s: number, v: Value) => s + valueBytes(v), 0);
  return bytes / m.memoryBandwidth;
}

export interface StepTime {
  /** Predicted wall time of one step. */
  seconds: number;
  /** Device compute alone. */
  computeSeconds: number;
  /** Time the busier direction of the link is busy. */
  linkSeconds: number;
  /** Time compute waits for copies and host work. */
  stallSeconds: number;
}

/**
 * Plays the step out: compute in program order; copies on their direction of the link in the order they
 * are issued, each starting when both that direction and its issue point are reached; AdamW on the host
 * (`onHost`, from the memory plan) after its gradient's copy.
 */
export function simulateStep(g: Graph, m: Machine, onHost: (n: Node) => boolean, measured?: MeasuredTimes): StepTime {
  let device = 0;
  let host = 0;
  let compute = 0;
  let stall = 0;
  const link = { h2d: 0, d2h: 0 }; // when each direction is next free
  const busy = { h2d: 0, d2h: 0 };
  const ready = new Map<number, number>(); // value id -> when its copy arrives
  const onLink = (v: Value, direction: "h2d" | "d2h") => {
    const seconds = valueBytes(v) / m.linkBandwidth;
    link[direction] = Math.max(link[direction], device) + seconds;
    busy[direction] += seconds;
    ready.set(v.id, link[direction]);
  };
  for (const n of g.nodes) {
    if (n.op === "chunk_h2d") onLink(n.outputs[0], "h2d");
    else if (n.op === "copy_d2h") onLink(n.outputs[0], "d2h");
    else if (n.op === "wait") {
      const until = ready.get(n.inputs[0].id) ?? device;
      stall += Math.max(0, until - device);
      device = Math.max(device, until);
    } else if (n.op === "adamw" && onHost(n)) {
      const after = ready.get(n.inputs[1].id) ?? device;
      host = Math.max(host, after, device) + (ADAMW_BYTES_PER_ELEMENT * numel(n.inputs[0].shape)) / m.hostBandwidth;
    } else {
      const seconds = nodeSeconds(n, m, measured);
      device += seconds;
      compute += seconds;
    }
  }
  const end = Math.max(device, link.h2d, link.d2h, host);
  return { seconds: end, computeSeconds: compute, linkSeconds: Math.max(busy.h2d, busy.d2h), stallSeconds: stall + (end - device) };
}

/**
 * One H100 with the CUDA backend, roughly: products at a blend of cuBLAS's bf16 rate and the simple
 * attention kernels' fp32 rate, HBM3 for elementwise kernels, PCIe 5 with pinned memory for copies, and
 * several host cores for AdamW on offloaded chunks. Guesses to be replaced by measurements
 * (scripts/gpu-check.sh prints what the GPU achieved).
 */
export const H100_DEFAULTS: Machine = { matmulFlops: 100e12, memoryBandwidth: 2.5e12, linkBandwidth: 25e9, hostBandwidth: 20e9 };
