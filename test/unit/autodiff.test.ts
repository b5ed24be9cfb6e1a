// The autodiff pass, graph in and graph out as text: each expected backward below is derived by hand
// from the forward (the derivation is in the comments), not captured from the pass.
import { describe, expect, it } from "vitest";
import { parseGraph } from "../../ir/parser.ts";
import { autodiff } from "../../ir/passes/autodiff.ts";
import { printGraph } from "../../ir/printer.ts";
import type { Graph } from "../../ir/types.ts";
import { verifyGraph } from "../../ir/verify.ts";

/** Splits a program text at its results line, so a backward section can go in between. */
function withBackward(forward: string, backward: string): string {
  const at = forward.indexOf("# results:");
  return forward.slice(0, at) + backward + forward.slice(at);
}

function gradIds(g: Graph): Record<string, number> {
  return Object.fromEntries(Object.entries(g.grads).map(([name, v]) => [name, v.id]));
}

function differentiate(forward: string): Graph {
  const g = autodiff(parseGraph(forward));
  verifyGraph(g);
  return g;
}

describe("autodiff", () => {
  it("differentiates a linear layer with a bias under cross-entropy", () => {
    // y = x wᵀ + b, L = CE(y, t). dL = 1; dy = CE'(y, t) dL; db = dy summed over rows; dw = dyᵀ x.
    // x and t are inputs, so they get no gradient. Backward nodes carry their forward node's location.
    const forward = `# forward
  %0 = param() {name="w", shape=[5,3]} : f32[5,3]
  %1 = param() {name="b", shape=[5]} : f32[5]
  %2 = input() {name="x", shape=[4,3], dtype="f32"} : f32[4,3]
  %3 = input() {name="t", shape=[4], dtype="i32"} : i32[4]
  %4 = matmul(%2, %0) {ta=false, tb=true} : f32[4,5]  # m.ts:3:5
  %5 = add(%4, %1) : f32[4,5]  # m.ts:3:20
  %6 = cross_entropy(%5, %3) : f32[]  # m.ts:4:1
# results: x=%2, t=%3, loss=%6
`;
    const backward = `# backward
  %7 = fill() {shape=[], value=1} : f32[]  # m.ts:4:1
  %8 = cross_entropy_bwd(%5, %3, %7) : f32[4,5]  # m.ts:4:1
  %9 = sum_rows(%8) {to=[5]} : f32[5]  # m.ts:3:20
  %10 = matmul(%8, %2) {ta=true, tb=false} : f32[5,3]  # m.ts:3:5
`;
    const g = differentiate(forward);
    expect(printGraph(g)).toBe(withBackward(forward, backward));
    expect(gradIds(g)).toEqual({ w: 10, b: 9 });
  });

  it("sums the gradients of a value used by two nodes with an add", () => {
    // h = gelu(w) * w. dh = CE'(h, t); through mul: d(gelu(w)) = dh * w and, for w directly,
    // dh * gelu(w); through gelu: gelu'(w) d(gelu(w)). w's two contributions are then added.
    const forward = `# forward
  %0 = param() {name="w", shape=[4,5]} : f32[4,5]
  %1 = input() {name="t", shape=[4], dtype="i32"} : i32[4]
  %2 = gelu(%0) : f32[4,5]
  %3 = mul(%2, %0) : f32[4,5]
  %4 = cross_entropy(%3, %1) : f32[]
# results: t=%1, loss=%4
`;
    const backward = `# backward
  %5 = fill() {shape=[], value=1} : f32[]
  %6 = cross_entropy_bwd(%3, %1, %5) : f32[4,5]
  %7 = mul(%6, %0) : f32[4,5]
  %8 = mul(%6, %2) : f32[4,5]
  %9 = gelu_bwd(%0, %7) : f32[4,5]
  %10 = add(%8, %9) : f32[4,5]
`;
    const g = differentiate(forward);
    expect(printGraph(g)).toBe(withBackward(forward, backward));
    expect(gradIds(g)).toEqual({ w: 10 });
  });

  it("sums the gradients of a value used twice by one node, then through a transposed matmul", () => {
    // y = aᵀ b (a stored [3,4]), h = y * y. dh = CE'(h, t); dy = dh * y + dh * y (one add);
    // da = b dyᵀ ([3,2] @ [2,4]), db = a dy ([3,4] @ [4,2]).
    const forward = `# forward
  %0 = param() {name="a", shape=[3,4]} : f32[3,4]
  %1 = param() {name="b", shape=[3,2]} : f32[3,2]
  %2 = matmul(%0, %1) {ta=true, tb=false} : f32[4,2]
  %3 = mul(%2, %2) : f32[4,2]
  %4 = input() {name="t", shape=[4], dtype="i32"} : i32[4]
  %5 = cross_entropy(%3, %4) : f32[]
# results: t=%4, loss=%5
`;
    const backward = `# backward
  %6 = fill() {shape=[], value=1} : f32[]
  %7 = cross_entropy_bwd(%3, %4, %6) : f32[4,2]
  %8 = mul(%7, %2) : f32[4,2]
  %9 = mul(%7, %2) : f32[4,2]
  %10 = add(%8, %9) : f32[4,2]
  %11 = matmul(%1, %10) {ta=false, tb=true} : f32[3,4]
  %12 = matmul(%0, %10) {ta=false, tb=false} : f32[3,2]
`;
    const g = differentiate(forward);
    expect(printGraph(g)).toBe(withBackward(forward, backward));
    expect(gradIds(g)).toEqual({ a: 11, b: 12 });
  });

  it("gives an unused split output a zero gradient before concatenating", () => {
    // [p, q] = split(w); only p reaches the loss, so dw = concat(dp, zeros like q).
    const forward = `# forward
  %0 = param() {name="w", shape=[2,6]} : f32[2,6]
  %1, %2 = split(%0) {sizes=[4,2]} : f32[2,4], f32[2,2]
  %3 = input() {name="t", shape=[2], dtype="i32"} : i32[2]
  %4 = cross_entropy(%1, %3) : f32[]
# results: t=%3, loss=%4
`;
    const backward = `# backward
  %5 = fill() {shape=[], value=1} : f32[]
  %6 = cross_entropy_bwd(%1, %3, %5) : f32[2,4]
  %7 = fill() {shape=[2,2], value=0} : f32[2,2]
  %8 = concat(%6, %7) : f32[2,6]
`;
    const g = differentiate(forward);
    expect(printGraph(g)).toBe(withBackward(forward, backward));
    expect(gradIds(g)).toEqual({ w: 8 });
  });
});
