// The fuse pass (matmul + cross_entropy -> linear_cross_entropy), graph in and graph out as text, the
// cases it must leave alone, the tile it picks, and the loss of the fused GPT-2 sample against the
// unfused one in the float64 interpreter.
import { describe, expect, it } from "vitest";
import { interpret } from "../../ir/interpret.ts";
import { workspaceBytes } from "../../ir/ops.ts";
import { parseGraph } from "../../ir/parser.ts";
import { fuseLmHead, lmHeadTile } from "../../ir/passes/fuse_lm_head.ts";
import { printGraph } from "../../ir/printer.ts";
import { numel } from "../../ir/types.ts";
import { verifyGraph } from "../../ir/verify.ts";
import gpt2 from "../../samples/gpt2.ts";
import { buildModel, traceProgram } from "../../src/driver/trace_program.ts";
import { mulberry32 as rng } from "../../src/util/random.ts";

// GPT-2's head: x [B*T, C] times wteᵀ, reshaped to [B, T, V], under the loss against targets [B, T].
const head = `# forward
  %0 = param() {name="wte", shape=[7,3]} : f32[7,3]
  %1 = input() {name="x", shape=[4,3], dtype="f32"} : f32[4,3]
  %2 = matmul(%1, %0) {ta=false, tb=true} : f32[4,7]  # m.ts:5:3
  %3 = reshape(%2) {shape=[2,2,7]} : f32[2,2,7]  # m.ts:5:9
  %4 = input() {name="targets", shape=[2,2], dtype="i32"} : i32[2,2]
  %5 = cross_entropy(%3, %4) : f32[]  # m.ts:5:9
# results: targets=%4, loss=%5
`;

describe("fuse_lm_head", () => {
  it("replaces the matmul, the reshape and the loss by one node at the matmul's line, with the targets as rows", () => {
    const fused = fuseLmHead(parseGraph(head));
    verifyGraph(fused);
    expect(printGraph(fused)).toBe(`# forward
  %0 = param() {name="wte", shape=[7,3]} : f32[7,3]
  %1 = input() {name="x", shape=[4,3], dtype="f32"} : f32[4,3]
  %2 = input() {name="targets", shape=[2,2], dtype="i32"} : i32[2,2]
  %3 = reshape(%2) {shape=[4]} : i32[4]  # m.ts:5:3
  %4, %5 = linear_cross_entropy(%1, %0, %3) {tb=true, rows=4, cols=7} : f32[], f32[4]  # m.ts:5:3
# results: targets=%2, loss=%4
`);
  });

  it("fuses a weight stored [C, V] and logits without a reshape", () => {
    const g = parseGraph(`# forward
  %0 = param() {name="w", shape=[3,7]} : f32[3,7]
  %1 = input() {name="x", shape=[4,3], dtype="f32"} : f32[4,3]
  %2 = matmul(%1, %0) {ta=false, tb=false} : f32[4,7]
  %3 = input() {name="targets", shape=[4], dtype="i32"} : i32[4]
  %4 = cross_entropy(%2, %3) : f32[]
# results: targets=%3, loss=%4
`);
    expect(printGraph(fuseLmHead(g))).toContain("%3, %4 = linear_cross_entropy(%1, %0, %2) {tb=false, rows=4, cols=7}");
  });

  const untouched: [string, string][] = [
    ["the logits are also a result", head.replace("loss=%5", "loss=%5, logits=%3")],
    ["the matmul's output has another reader", head.replace("# results", "  %6 = gelu(%2) : f32[4,7]\n# results")],
    [
      "the reshape moves the vocabulary axis",
      head
        .replace("%3 = reshape(%2) {shape=[2,2,7]} : f32[2,2,7]", "%3 = reshape(%2) {shape=[2,7,2]} : f32[2,7,2]")
        .replace(`shape=[2,2], dtype="i32"} : i32[2,2]`, `shape=[2,7], dtype="i32"} : i32[2,7]`),
    ],
    [
      "the left operand is transposed",
      head
        .replace(`shape=[4,3], dtype="f32"} : f32[4,3]`, `shape=[3,4], dtype="f32"} : f32[3,4]`)
        .replace("{ta=false, tb=true}", "{ta=true, tb=true}"),
    ],
  ];
  for (const [why, text] of untouched) {
    it(`leaves the graph alone when ${why}`, () => {
      const g = parseGraph(text);
      expect(fuseLmHead(g)).toBe(g);
    });
  }

  it("tiles all rows up to 1024 and fills 16 MiB with vocabulary columns", () => {
    expect(lmHeadTile(1024, 50257)).toEqual({ rows: 1024, cols: 4096 });
    expect(lmHeadTile(8192, 50257)).toEqual({ rows: 1024, cols: 4096 });
    expect(lmHeadTile(256, 50257)).toEqual({ rows: 256, cols: 16384 });
    expect(lmHeadTile(4, 7)).toEqual({ rows: 4, cols: 7 });
    const [fwd] = fuseLmHead(parseGraph(head)).nodes.filter((n) => n.op === "linear_cross_entropy");
    expect(workspaceBytes(fwd.op, fwd.inputs, fwd.attrs, 2)).toBe((4 * 7 + 2 * 4) * 4);
  });
});

describe("the fused GPT-2 sample", () => {
  it("has no [tokens, vocab] value and computes the unfused loss", () => {
    const config = { vocab: 13, seq: 8, layers: 1, dim: 8, heads: 2 };
    const traced = traceProgram(buildModel(gpt2, config), config, { batch: 2, seq: 6, kind: "train" });
    const fused = fuseLmHead(traced);
    verifyGraph(fused);
    const values = fused.nodes.flatMap((n) => n.outputs);
    expect(values.filter((v) => v.shape.at(-1) === config.vocab && v.shape.length > 1)).toEqual([]);
    expect(fused.nodes.filter((n) => n.op === "linear_cross_entropy")).toHaveLength(1);

    const rand = rng(11);
    const params = new Map(traced.params.map((p) => [p.name, Float64Array.from({ length: numel(p.shape) }, () => 2 * rand() - 1)]));
    const tokens = () => Int32Array.from({ length: 12 }, () => Math.floor(rand() * config.vocab));
    const feeds = { params, inputs: { tokens: tokens(), targets: tokens() } };
    const loss = (g: typeof traced) => interpret(g, feeds).get(g.named.loss.id)![0];
    expect(loss(fused)).toBeCloseTo(loss(traced), 12);
    expect(loss(traced)).toBeGreaterThan(1); // a real loss, not a degenerate one
  });
});
