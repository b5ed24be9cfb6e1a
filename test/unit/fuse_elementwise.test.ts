// The elementwise fusion pass (ir/passes/fuse_elementwise.ts) on RMSNorm as the DSL traces it, with a
// backward node reading two of its values: the groups it makes (stated by hand below), the values it
// must keep because something outside a group reads them, the boundaries it must not cross, and the
// fused graph's results against the unfused graph's through the float64 interpreter.
import { describe, expect, it } from "vitest";
import { interpret } from "../../ir/interpret.ts";
import { parseGraph } from "../../ir/parser.ts";
import { fuseElementwise } from "../../ir/passes/fuse_elementwise.ts";
import { type FusedStep, formatProgram, parseSteps } from "../../ir/fused_program.ts";
import { fusionSavings } from "../../ir/passes/fusion_savings.ts";
import type { Graph } from "../../ir/types.ts";
import { verifyGraph } from "../../ir/verify.ts";
import { mulberry32 } from "../../src/util/random.ts";
import { compilePlan } from "../../src/driver/compile.ts";
import gpt2 from "../../samples/gpt2.ts";

const rmsnorm = `# forward
  %0 = input() {name="x", shape=[2,3,4], dtype="f32"} : f32[2,3,4]
  %1 = param() {name="w", shape=[4]} : f32[4]
  %2 = unary(%0) {fn="square"} : f32[2,3,4]  # m.ts:1:1
  %3 = reduce(%2) {fn="mean"} : f32[2,3,1]  # m.ts:1:1
  %4 = fill() {shape=[], value=0.00001} : f32[]  # m.ts:1:1
  %5 = add(%3, %4) : f32[2,3,1]  # m.ts:1:1
  %6 = unary(%5) {fn="rsqrt"} : f32[2,3,1]  # m.ts:1:1
  %7 = binary(%0, %6) {fn="mul"} : f32[2,3,4]  # m.ts:1:1
  %8 = mul(%7, %1) : f32[2,3,4]  # m.ts:1:1
  %9 = reshape(%8) {shape=[6,4]} : f32[6,4]  # m.ts:2:1
  %10 = unary(%9) {fn="exp"} : f32[6,4]  # m.ts:3:1
  %11 = scale(%10) {s=0.5} : f32[6,4]  # m.ts:3:1
# backward
  %12 = binary(%7, %6) {fn="mul"} : f32[2,3,4]  # m.ts:1:1
  %13 = add(%12, %0) : f32[2,3,4]  # m.ts:1:1
# results: y=%11, r=%13
`;

/** Each fused node as [its program, its outputs, its inputs by the original graph's value ids]. */
function groups(fused: Graph, original: Graph): [string, readonly number[], number[]][] {
  // Values that pass through unchanged keep their shape and producer op; match them by position of their producer.
  const kept = new Map(fused.nodes.filter((n) => n.op !== "fused").map((n, i) => [n.outputs[0]?.id, i]));
  const originalKept = original.nodes.filter((n) => !["unary", "reduce", "fill", "add", "binary", "mul", "scale"].includes(n.op));
  const name = (id: number) => {
    const producer = fused.nodes.find((n) => n.outputs.some((v) => v.id === id))!;
    if (producer.op !== "fused") return originalKept[kept.get(id)!].outputs[0].id;
    const k = producer.outputs.findIndex((v) => v.id === id);
    return -(100 * (fused.nodes.filter((n) => n.op === "fused").indexOf(producer) + 1) + k); // fused output k of group g: -(100 g + k)
  };
  return fused.nodes.flatMap((n) => (n.op === "fused" ? [[n.attrs.program, n.attrs.outs, n.inputs.map((v) => name(v.id))]] : []));
}

describe("fuse_elementwise", () => {
  const original = parseGraph(rmsnorm);
  const fused = fuseElementwise(original);

  it("groups RMSNorm into a square-and-mean kernel, an eps-and-rsqrt kernel and a products kernel through a reshape", () => {
    verifyGraph(fused);
    expect(groups(fused, original)).toEqual([
      // %2 is read only by the mean: not an output.
      ["unary{fn=square}(x0); reduce{fn=mean}(s0)", [1], [0]],
      // The fill becomes a constant; %5 is read only by the rsqrt.
      ["fill{shape=[] value=0.00001}(); add(x0,s0); unary{fn=rsqrt}(s1)", [2], [-100]],
      // %7 is also read by the backward: it stays an output beside %11. The reshape (a view: the same
      // elements) joins, and exp and scale after it; %8 and %9 are read only in the group.
      ["binary{fn=mul}(x0,x1); mul(s0,x2); reshape{shape=[6,4]}(s1); unary{fn=exp}(s2); scale{s=0.5}(s3)", [0, 4], [0, -200, 1]],
      // The backward is a run of its own, reading %7 and the rsqrt.
      ["binary{fn=mul}(x0,x1); add(s0,x2)", [1], [-300, -200, 0]],
    ]);
    expect(fused.nodes.filter((n) => n.op !== "fused").map((n) => n.op)).toEqual(["input", "param"]);
  });

  it("gives the unfused graph's results in the float64 interpreter", () => {
    const random = mulberry32(7);
    const feeds = {
      params: new Map([["w", Float64Array.from({ length: 4 }, () => random() + 0.5)]]),
      inputs: { x: Float64Array.from({ length: 24 }, () => 2 * random() - 1) },
    };
    const want = interpret(original, feeds);
    const got = interpret(fused, feeds);
    for (const name of ["y", "r"]) expect(got.get(fused.named[name].id)).toEqual(want.get(original.named[name].id));
  });

  it("counts the kernels and bytes it saves against the unfused graph's own counts", () => {
    const before = fusionSavings(original);
    const after = fusionSavings(fused);
    expect(before.kernels - after.kernels).toBe(after.kernelsSaved);
    expect(after.kernelsSaved).toBe(11 - 4); // 11 nodes ran kernels (the fill too; not the reshape), now 4
    expect(after.elementwiseBytes).toBeLessThan(before.elementwiseBytes);
    expect(before.elementwiseBytes - after.elementwiseBytes).toBe(after.bytesSaved);
  });

  it("does not fuse across checkpoint regions, and keeps a constant that something outside reads", () => {
    const g = parseGraph(`# forward
  %0 = input() {name="x", shape=[4], dtype="f32"} : f32[4]
  %1 = fill() {shape=[], value=2} : f32[]
  %2 = add(%0, %1) {ckpt=0} : f32[4]
  %3 = unary(%2) {fn="exp", ckpt=1} : f32[4]
  %4 = add(%3, %1) {ckpt=1} : f32[4]
# results: y=%4
`);
    const out = fuseElementwise(g);
    // ckpt 0's add is alone; ckpt 1's exp and add fuse, reading the fill, which stays a node.
    expect(out.nodes.map((n) => n.op)).toEqual(["input", "fill", "add", "fused"]);
    const last = out.nodes[3];
    expect(last.op === "fused" && last.attrs.program).toBe("unary{fn=exp}(x0); add(s0,x1)");
  });

  it("stores a value nothing reads, as the unfused graph did, so every step's value is used", () => {
    const g = parseGraph(`# forward
  %0 = input() {name="x", shape=[4], dtype="f32"} : f32[4]
  %1 = unary(%0) {fn="exp"} : f32[4]
  %2 = unary(%0) {fn="neg"} : f32[4]
  %3 = scale(%1) {s=2} : f32[4]
# results: y=%3
`);
    const out = fuseElementwise(g);
    const fused = out.nodes[1];
    expect(fused.op === "fused" && [fused.attrs.program, fused.attrs.outs]).toEqual([
      "unary{fn=exp}(x0); unary{fn=neg}(x0); scale{s=2}(s0)",
      [1, 2],
    ]);
  });

  it("keeps a reshape read outside its group as a view of the fused output, and one that ends a run as it was", () => {
    const g = parseGraph(`# forward
  %0 = input() {name="x", shape=[6,4], dtype="f32"} : f32[6,4]
  %1 = param() {name="b", shape=[4]} : f32[4]
  %2 = add(%0, %1) : f32[6,4]
  %3 = reshape(%2) {shape=[2,3,4]} : f32[2,3,4]
  %4 = gelu(%3) : f32[2,3,4]
  %5 = scale(%4) {s=2} : f32[2,3,4]
  %6 = reshape(%5) {shape=[24]} : f32[24]
# backward
  %7 = gelu_bwd(%3, %4) : f32[2,3,4]
# results: y=%6, r=%7
`);
    const out = fuseElementwise(g);
    verifyGraph(out);
    // The bias add, the reshape, GELU and the scale are one kernel. GELU's input %3 is read by the backward:
    // the add's value (its source) is stored, and %3 is a reshape of it; GELU's value is stored for the
    // backward too. The last reshape ends the run and stays.
    expect(out.nodes.map((n) => n.op)).toEqual(["input", "param", "fused", "reshape", "reshape", "gelu_bwd"]);
    const fused = out.nodes[2];
    expect(fused.op === "fused" && [fused.attrs.program, fused.attrs.outs]).toEqual([
      "add(x0,x1); reshape{shape=[2,3,4]}(s0); gelu(s1); scale{s=2}(s2)",
      [0, 2, 3],
    ]);
    expect(out.nodes[3].inputs[0]).toBe(fused.outputs[0]);
    expect(out.nodes[3].outputs[0].shape).toEqual([2, 3, 4]);
    expect(out.nodes[4].inputs[0]).toBe(fused.outputs[2]);
    const random = mulberry32(3);
    const feeds = {
      params: new Map([["b", Float64Array.from({ length: 4 }, () => random() - 0.5)]]),
      inputs: { x: Float64Array.from({ length: 24 }, () => 4 * random() - 2) },
    };
    const [want, got] = [interpret(g, feeds), interpret(out, feeds)];
    for (const name of ["y", "r"]) expect(got.get(out.named[name].id)).toEqual(want.get(g.named[name].id));
  });

  it("makes no step of a reshape that only readers outside the group read: it is a view after the fused node", () => {
    const g = parseGraph(`# forward
  %0 = input() {name="x", shape=[6,4], dtype="f32"} : f32[6,4]
  %1 = unary(%0) {fn="exp"} : f32[6,4]
  %2 = reshape(%1) {shape=[24]} : f32[24]
  %3 = scale(%1) {s=2} : f32[6,4]
# backward
  %4 = unary(%2) {fn="neg"} : f32[24]
# results: y=%3, r=%4
`);
    const out = fuseElementwise(g);
    verifyGraph(out);
    expect(out.nodes.map((n) => n.op)).toEqual(["input", "fused", "reshape", "unary"]);
    const fused = out.nodes[1];
    expect(fused.op === "fused" && [fused.attrs.program, fused.attrs.outs]).toEqual(["unary{fn=exp}(x0); scale{s=2}(s0)", [0, 1]]);
    expect(out.nodes[2].inputs[0]).toBe(fused.outputs[0]);
  });

  // Bitwise equality of the float32 kernels through reshapes: test/system/llama.test.ts (Llama fuses through
  // reshapes too), on the CPU and emulated CUDA.
  it("fuses GPT-2's bias adds with the GELU and the residual adds after them, through the reshapes between", () => {
    const config = { ...gpt2.presets.mini, vocab: 64, layers: 1 };
    const opts = { batch: 2, seq: 16, threads: 1, clip: true, checkpoint: "none" as const };
    const fused = compilePlan(gpt2, "samples/gpt2.ts", config, opts).train.graph;
    const unfused = compilePlan(gpt2, "samples/gpt2.ts", config, { ...opts, fusion: false }).train.graph;
    const C = config.dim;
    const programs = fused.nodes.flatMap((n) => (n.op === "fused" && n.phase === "forward" ? [n.attrs.program] : []));
    expect(programs).toEqual([
      `add(x0,x1); reshape{shape=[2,16,${C}]}(s0); add(x2,s1)`, // attention projection's bias, residual
      `add(x0,x1); reshape{shape=[2,16,${4 * C}]}(s0); gelu(s1)`, // fc's bias, GELU
      `add(x0,x1); reshape{shape=[2,16,${C}]}(s0); add(x2,s1)`, // MLP projection's bias, residual
    ]);
    expect(fusionSavings(unfused).kernels - fusionSavings(fused).kernels).toBe(fusionSavings(fused).kernelsSaved);
    expect(fusionSavings(fused).kernelsSaved).toBeGreaterThanOrEqual(3);
  });

  it("reads back the attribute values it writes: infinities, small and negative numbers, names", () => {
    const steps: FusedStep[] = [
      { op: "fill", attrs: { shape: [], value: -Infinity }, args: [] },
      { op: "fill", attrs: { shape: [2, 3], value: 1e-5 }, args: [] },
      { op: "scale", attrs: { s: -0.125 }, args: [{ from: "input", index: 0 }] },
      { op: "unary", attrs: { fn: "pow", p: 3 }, args: [{ from: "step", index: 2 }] },
    ];
    expect(parseSteps(formatProgram(steps))).toEqual(steps);
  });
});
