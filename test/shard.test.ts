// The shard pass and the gradient rules of the collectives, in float64: one training step of a small
// GPT-2 (vocabulary 37, a prime, so it is padded) sharded over 2 and 3 simulated ranks
// (test/helpers/spmd.ts) against the same step unsharded, both run by the reference interpreter. Each
// rank's loss, gradient norm, gradients and updated parameters must be its part of the unsharded ones.
import { describe, expect, test } from "vitest";
import gpt2 from "../samples/gpt2.ts";
import { type Feeds, interpret } from "../ir/interpret.ts";
import { verifyGraph } from "../ir/verify.ts";
import { type Graph, type ParamInfo, numel } from "../ir/types.ts";
import { compilePlan, type CompileOptions } from "../src/driver/compile.ts";
import { mulberry32 } from "../src/util/random.ts";
import { spmd, takeShard } from "./helpers/spmd.ts";

const cfg = { vocab: 37, seq: 8, layers: 2, dim: 24, heads: 6 };
const adam = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, t: 1, gradClip: 0.5 };

function step(tp: number, opts: Partial<CompileOptions>): Graph {
  const plan = compilePlan(gpt2, "samples/gpt2.ts", cfg, { batch: 2, seq: 8, threads: 1, clip: true, checkpoint: "none", ...opts, tp });
  for (const stage of plan.stages) verifyGraph(stage.graph);
  return plan.train.graph;
}

function randomFeeds(g: Graph): Feeds {
  const rand = mulberry32(11);
  const params = new Map(g.params.map((p) => [p.name, Float64Array.from({ length: numel(p.shape) }, () => 0.3 * (rand() - 0.5))]));
  const ids = () => Int32Array.from({ length: 16 }, () => Math.floor(rand() * cfg.vocab));
  return { params, inputs: { tokens: ids(), targets: ids() }, adam };
}

/** The updated value of each parameter: the first output of its adamw node. */
function updated(g: Graph, p: ParamInfo): number {
  return g.nodes.find((n) => n.op === "adamw" && n.inputs[0].id === p.value.id)!.outputs[0].id;
}

function expectNear(ours: ArrayLike<number>, reference: ArrayLike<number>, what: string): void {
  expect(ours.length, what).toBe(reference.length);
  const scale = Math.max(1e-3, ...Array.from(reference, Math.abs));
  for (let i = 0; i < reference.length; i++)
    expect(Math.abs(ours[i] - reference[i]), `${what}[${i}]: ${ours[i]} vs ${reference[i]}`).toBeLessThan(1e-10 * scale);
}

function compare(tp: number, opts: Partial<CompileOptions> = {}): void {
  const whole = step(1, opts);
  const sharded = step(tp, opts);
  const feeds = randomFeeds(whole);
  const reference = interpret(whole, feeds);
  const fullShape = new Map(whole.params.map((p) => [p.name, p.shape]));
  const part = (name: string, full: Float64Array, rank: number) => {
    const spec = sharded.params.find((p) => p.name === name)!.shard;
    return spec ? takeShard(full, fullShape.get(name)!, spec, rank) : full;
  };
  const ranks = spmd(sharded, tp, (rank) => ({
    ...feeds, params: new Map([...feeds.params].map(([name, full]) => [name, part(name, full, rank)])),
  }));
  expect(sharded.params.filter((p) => p.shard).map((p) => p.name)).toContain("transformer.wte.weight");
  ranks.forEach((env, rank) => {
    for (const name of ["loss", ...(opts.clip === false ? [] : ["grad_norm"])])
      expectNear(env.get(sharded.named[name].id)!, reference.get(whole.named[name].id)!, `rank ${rank} ${name}`);
    for (const p of sharded.params) {
      const w = whole.params.find((q) => q.name === p.name)!;
      const grad = reference.get(whole.grads[p.name].id) as Float64Array;
      expectNear(env.get(sharded.grads[p.name].id)!, part(p.name, grad, rank), `rank ${rank} gradient of ${p.name}`);
      const next = reference.get(updated(whole, w)) as Float64Array;
      expectNear(env.get(updated(sharded, p))!, part(p.name, next, rank), `rank ${rank} update of ${p.name}`);
    }
  });
}

describe("the shard pass computes, on each rank, its part of the unsharded step", () => {
  test("2 ranks, gradient clipping on", () => compare(2));
  test("3 ranks (each holds 13 of 37 rows of the vocabulary, 2 of them padding), clipping off", () => compare(3, { clip: false }));
  test("2 ranks with --checkpoint blocks: the recomputed collectives too", () => compare(2, { checkpoint: "blocks" }));
});
