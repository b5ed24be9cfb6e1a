// Without gradient clipping, each AdamW update runs as soon as its gradient is final and its parameter
// has been read for the last time, so gradients do not pile up until the end of the backward.
import { describe, expect, test } from "vitest";
import { verifyGraph } from "../../ir/verify.ts";
import gpt2 from "../../samples/gpt2.ts";
import { type CompileOptions } from "../../plan/plan.ts";
import { compilePlan } from "../../src/driver/compile.ts";

const config = { vocab: 512, seq: 64, layers: 8, dim: 256, heads: 8 };
const base: CompileOptions = { batch: 2, seq: 64, threads: 2, clip: false, checkpoint: "blocks" };
const plan = (clip: boolean) => compilePlan(gpt2, "samples/gpt2.ts", config, { ...base, clip });

describe("early AdamW updates", () => {
  test("each update follows its gradient and every read of its parameter, and precedes the end of the backward", () => {
    const g = plan(false).train.graph;
    verifyGraph(g);
    const pos = new Map(g.nodes.map((n, i) => [n, i]));
    const lastBackward = g.nodes.map((n) => n.phase).lastIndexOf("backward");
    const updates = g.nodes.filter((n) => n.op === "adamw");
    expect(updates).toHaveLength(g.params.length);
    for (const u of updates) {
      const [param, grad] = u.inputs;
      const i = pos.get(u)!;
      expect(i).toBeGreaterThan(pos.get(grad.producer)!);
      for (const n of g.nodes) if (n !== u && n.inputs.includes(param)) expect(pos.get(n)!).toBeLessThan(i);
    }
    // Most updates now run inside the backward, not after it.
    expect(updates.filter((u) => pos.get(u)! < lastBackward).length).toBeGreaterThan(g.params.length / 2);
  });

  test("gradients no longer pile up: the predicted peak drops", () => {
    const [late, early] = [plan(true), plan(false)];
    expect(late.train.graph.nodes.some((n) => n.op === "grad_norm")).toBe(true); // clipping keeps them late
    expect(early.train.memory.breakdown.gradients).toBeLessThan(late.train.memory.breakdown.gradients / 4);
    expect(early.train.memory.peak).toBeLessThan(late.train.memory.peak);
  });
});
