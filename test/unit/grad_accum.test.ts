// Gradient accumulation as a rewrite (ir/passes/grad_accum.ts): GPT-2 traced at a micro-batch of 2 and
// unrolled over 2 micro-batches computes, in the float64 interpreter, the loss and every gradient of the
// plain program traced at the whole batch of 4. Also the data-parallel average (data_parallel.ts): one
// mean all-reduce per gradient and for the loss, each reading what it replaces.
import { describe, expect, it } from "vitest";
import { interpret } from "../../ir/interpret.ts";
import { autodiff } from "../../ir/passes/autodiff.ts";
import { accumulateGradients } from "../../ir/passes/grad_accum.ts";
import { averageOverDataParallel } from "../../ir/passes/data_parallel.ts";
import { numel } from "../../ir/types.ts";
import { verifyGraph } from "../../ir/verify.ts";
import gpt2 from "../../samples/gpt2.ts";
import { buildModel, traceProgram } from "../../src/driver/trace_program.ts";
import { mulberry32 as rng } from "../../src/util/random.ts";

const config = { vocab: 13, seq: 8, layers: 1, dim: 8, heads: 2 };
const model = buildModel(gpt2, config);
const trained = (batch: number) => autodiff(traceProgram(model, config, { batch, seq: 6, kind: "train" }));

describe("gradient accumulation", () => {
  it("two micro-batches of 2 give the loss and gradients of one batch of 4", () => {
    const whole = trained(4);
    const accumulated = accumulateGradients(trained(2), 2);
    verifyGraph(accumulated);
    expect(accumulated.nodes.filter((n) => n.op === "input").map((n) => n.outputs[0].shape)).toEqual([
      [4, 6],
      [4, 6],
    ]);

    const rand = rng(5);
    const params = new Map(whole.params.map((p) => [p.name, Float64Array.from({ length: numel(p.shape) }, () => rand() - 0.5)]));
    const tokens = () => Int32Array.from({ length: 4 * 6 }, () => Math.floor(rand() * config.vocab));
    const feeds = { params, inputs: { tokens: tokens(), targets: tokens() } };
    const want = interpret(whole, feeds);
    const got = interpret(accumulated, feeds);
    const close = (a: ArrayLike<number>, b: ArrayLike<number>, what: string) => {
      expect(a.length, what).toBe(b.length);
      for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i]), `${what}[${i}]`).toBeLessThan(1e-12 * (1 + Math.abs(b[i])));
    };
    close(got.get(accumulated.named.loss.id)!, want.get(whole.named.loss.id)!, "loss");
    for (const p of whole.params) close(got.get(accumulated.grads[p.name].id)!, want.get(whole.grads[p.name].id)!, `grad ${p.name}`);
  });

  it("one micro-batch leaves the graph as it is", () => {
    const g = trained(2);
    expect(accumulateGradients(g, 1)).toBe(g);
  });
});

describe("data-parallel average", () => {
  it("puts each gradient and the loss through a mean all-reduce over the data-parallel group", () => {
    const g = trained(2);
    const averaged = averageOverDataParallel(g, 2);
    verifyGraph(averaged);
    for (const p of g.params) {
      const n = averaged.grads[p.name].producer;
      expect(n.op).toBe("all_reduce");
      expect(n.attrs).toEqual({ reduce: "mean", group: "dp" });
      expect(n.inputs).toEqual([g.grads[p.name]]);
    }
    expect(averaged.named.loss.producer.inputs).toEqual([g.named.loss]);
    expect(averaged.nodes.filter((n) => n.op === "all_reduce")).toHaveLength(g.params.length + 1);
    expect(averageOverDataParallel(g, 1)).toBe(g);
  });
});
