// The text form of the IR: parseGraph (ir/parser.ts) reads back what printGraph (ir/printer.ts) writes,
// value ids as written, and reports malformed or ill-typed lines by line number.
import { describe, expect, it } from "vitest";
import { graphToJson } from "../../ir/json.ts";
import { parseGraph } from "../../ir/parser.ts";
import { adamwPass } from "../../ir/passes/adamw.ts";
import { autodiff } from "../../ir/passes/autodiff.ts";
import { printGraph } from "../../ir/printer.ts";
import { verifyGraph } from "../../ir/verify.ts";
import gpt2 from "../../samples/gpt2.ts";
import palm from "../../samples/palm.ts";
import { UserError } from "../../base/errors.ts";
import { buildModel, traceProgram } from "../../src/driver/trace_program.ts";

// Well typed, every phase, multi-output nodes, ids with gaps, attributes of every kind (negative and
// tiny numbers, booleans, an empty shape, a string with quotes, commas and braces), with and without
// source locations. Not a meaningful program: only its form matters here.
const handWritten = `# forward
  %0 = param() {name="w", shape=[4,3]} : f32[4,3]  # model.ts:3:7
  %1 = param() {name="b", shape=[4]} : f32[4]  # model.ts:4:7
  %2 = input() {name="x, \\"quoted\\" {x}", shape=[2,3], dtype="f32"} : f32[2,3]
  %3 = matmul(%2, %0) {ta=false, tb=true} : f32[2,4]  # model.ts:9:12
  %4 = add(%3, %1) : f32[2,4]  # model.ts:9:30
  %5, %6 = split(%4) {sizes=[1,3]} : f32[2,1], f32[2,3]  # model.ts:10:5
  %7 = scale(%6) {s=-0.5} : f32[2,3]
  %8 = input() {name="t", shape=[2], dtype="i32"} : i32[2]
  %9 = cross_entropy(%7, %8) : f32[]  # model.ts:12:3
# backward
  %20 = fill() {shape=[], value=1} : f32[]  # model.ts:12:3
  %21 = cross_entropy_bwd(%7, %8, %20) : f32[2,3]
  %22 = scale(%21) {s=-0.5} : f32[2,3]
  %23 = fill() {shape=[2,1], value=0} : f32[2,1]
  %24 = concat(%23, %22) : f32[2,4]
  %25 = sum_rows(%24) {to=[4]} : f32[4]
  %26 = matmul(%24, %2) {ta=true, tb=false} : f32[4,3]
  %27, %28, %29 = layernorm_bwd(%4, %1, %24) {eps=0.00001} : f32[2,4], f32[4], f32[4]
# optimizer
  %30 = grad_norm(%26, %25) : f32[]
  %31 = opt_state() {name="opt.m.b", shape=[4]} : f32[4]  # model.ts:4:7
  %32 = opt_state() {name="opt.v.b", shape=[4]} : f32[4]  # model.ts:4:7
  %33, %34, %35 = adamw(%1, %25, %31, %32, %30) {decay=false} : f32[4], f32[4], f32[4]  # model.ts:4:7
# results: x=%2, targets=%8, loss=%9, grad_norm=%30
`;

describe("parseGraph", () => {
  it("round-trips a hand-written graph", () => {
    expect(printGraph(parseGraph(handWritten))).toBe(handWritten);
  });

  it("builds the graph the text describes", () => {
    const g = parseGraph(handWritten);
    verifyGraph(g);
    expect(g.params.map((p) => [p.name, p.shape, p.decay, p.init, p.value.id])).toEqual([
      ["w", [4, 3], true, { kind: "normal", std: 0.02 }, 0],
      ["b", [4], false, { kind: "normal", std: 0.02 }, 1],
    ]);
    expect(Object.fromEntries(Object.entries(g.named).map(([k, v]) => [k, v.id]))).toEqual({ x: 2, targets: 8, loss: 9, grad_norm: 30 });
    expect(g.grads).toEqual({});
    expect(g.nodes.map((n) => n.id)).toEqual([...g.nodes.keys()]);
    expect(g.nodes.map((n) => n.phase[0]).join("")).toBe("fffffffff" + "bbbbbbbb" + "oooo");
    const split = g.nodes[5];
    expect(split.outputs.map((v) => [v.id, v.shape, v.producer, v.index])).toEqual([
      [5, [2, 1], split, 0],
      [6, [2, 3], split, 1],
    ]);
    expect(split.loc).toEqual({ file: "model.ts", line: 10, col: 5 });
    expect(g.nodes[2].attrs).toEqual({ name: 'x, "quoted" {x}', shape: [2, 3], dtype: "f32" });
    expect(g.nodes[6].attrs).toEqual({ s: -0.5 });
    expect(g.nodes[16].attrs).toEqual({ eps: 1e-5 });
    expect(g.nodes[6].inputs[0]).toBe(split.outputs[1]);
  });

  for (const [name, model, config] of [
    ["GPT-2 mini", gpt2, gpt2.presets.mini],
    ["PaLM small", palm, palm.presets.small],
  ] as const) {
    it(`round-trips the traced ${name} graph after autodiff and AdamW`, () => {
      const traced = traceProgram(buildModel(model, config), config, { batch: 2, seq: 32, kind: "train" });
      const g = adamwPass(autodiff(traced), { clip: true });
      const text = printGraph(g);
      const parsed = parseGraph(text);
      expect(printGraph(parsed)).toBe(text);
      verifyGraph(parsed);
      const nodesOf = (graph: typeof g) => (graphToJson(graph) as { nodes: unknown }).nodes;
      expect(nodesOf(parsed)).toEqual(nodesOf(g));
      expect(parsed.params.map((p) => [p.name, p.value.id])).toEqual(g.params.map((p) => [p.name, p.value.id]));
      expect(Object.keys(parsed.named)).toEqual(Object.keys(g.named));
    });
  }
});

describe("parse errors name the line", () => {
  const header = '# forward\n  %0 = param() {name="w", shape=[2,3]} : f32[2,3]\n';
  const cases: [string, string, RegExp][] = [
    ["an unknown op", "  %1 = matmull(%0, %0) : f32[2,2]", /line 3: unknown op 'matmull'/],
    ["a type that differs from the op's", "  %1 = gelu(%0) : f32[3,2]", /line 3: %1 is written as f32\[3,2\] but gelu gives f32\[2,3\]/],
    ["an ill-typed node", "  %1 = matmul(%0, %0) {ta=false, tb=false} : f32[2,3]", /line 3: matmul: inner dimensions differ/],
    ["a value used before it is defined", "  %1 = gelu(%7) : f32[2,3]", /line 3: %7 is used before it is defined/],
    ["a value defined twice", "  %0 = gelu(%0) : f32[2,3]", /line 3: %0 is defined twice/],
    ["too few output names", "  %1 = split(%0) {sizes=[1,2]} : f32[2,1]", /line 3: split has 2 output\(s\) here, the line names 1/],
    ["a wrong input count", "  %1 = gelu(%0, %0) : f32[2,3]", /line 3: gelu cannot take 2 inputs/],
    ["a missing attribute", "  %1 = transpose(%0) : f32[3,2]", /line 3: transpose: missing or malformed attributes/],
    ["a missing '='", "  %1 gelu(%0) : f32[2,3]", /line 3: expected '='/],
    ["a missing type", "  %1 = gelu(%0)", /line 3: expected ':'/],
    ["a bad type", "  %1 = gelu(%0) : f16[2,3]", /line 3: expected a type like f32\[2,3\]/],
    ["junk after the type", "  %1 = gelu(%0) : f32[2,3] extra", /line 3: unexpected 'extra'/],
    ["a bad source location", "  %1 = gelu(%0) : f32[2,3]  # somewhere", /line 3: expected a source location/],
    ["an unknown header", "# backwards", /line 3: unknown header '# backwards'/],
    ["a result naming an undefined value", "# results: loss=%5", /line 3: result loss refers to %5, which no line defines/],
    ["an unterminated string", '  %1 = input() {name="t} : i32[2]', /line 3: expected a string/],
  ];
  for (const [what, line, message] of cases)
    it(what, () => {
      const parse = () => parseGraph(header + line + "\n");
      expect(parse).toThrow(UserError);
      expect(parse).toThrow(message);
    });
});
