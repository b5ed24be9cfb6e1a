// One training step of a model compiled at TP 1 and at TP N, both run in float64 by the reference
// interpreter (the sharded one on simulated ranks, test/helpers/spmd.ts), from the same random
// parameters and tokens. Each rank's loss, gradient norm, gradients and updated parameters must be its
// part of the unsharded ones (takeShard, the reference cut).
import { expect } from "vitest";
import { type Feeds, interpret } from "../../ir/interpret.ts";
import { verifyGraph } from "../../ir/verify.ts";
import { type Graph, type ParamInfo, numel } from "../../ir/types.ts";
import { compilePlan } from "../../src/driver/compile.ts";
import { type CompileOptions } from "../../plan/plan.ts";
import type { ModelConfig, ModelDefinition } from "../../src/dsl/model.ts";
import { mulberry32 } from "../../src/util/random.ts";
import { spmd, takeShard } from "./spmd.ts";

export interface ShardCase {
  model: ModelDefinition;
  path: string;
  config: ModelConfig;
  batch: number;
  seq: number;
}

const adam = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, t: 1, gradClip: 0.5 };

export function trainingStep(c: ShardCase, tp: number, opts: Partial<CompileOptions>): Graph {
  const plan = compilePlan(c.model, c.path, c.config, {
    batch: c.batch,
    seq: c.seq,
    threads: 1,
    clip: true,
    checkpoint: "none",
    ...opts,
    tp,
  });
  for (const stage of plan.stages) verifyGraph(stage.graph);
  return plan.train.graph;
}

function randomFeeds(c: ShardCase, g: Graph): Feeds {
  const rand = mulberry32(11);
  const params = new Map(g.params.map((p) => [p.name, Float64Array.from({ length: numel(p.shape) }, () => 0.3 * (rand() - 0.5))]));
  const ids = () => Int32Array.from({ length: c.batch * c.seq }, () => Math.floor(rand() * c.config.vocab));
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

/** Runs the step at TP 1 and TP `tp`, compares every rank, and returns the sharded graph for further checks. */
export function compareSharded(c: ShardCase, tp: number, opts: Partial<CompileOptions> = {}): Graph {
  const whole = trainingStep(c, 1, opts);
  const sharded = trainingStep(c, tp, opts);
  const feeds = randomFeeds(c, whole);
  const reference = interpret(whole, feeds);
  const fullShape = new Map(whole.params.map((p) => [p.name, p.shape]));
  const part = (name: string, full: Float64Array, rank: number) => {
    const spec = sharded.params.find((p) => p.name === name)!.shard;
    return spec ? takeShard(full, fullShape.get(name)!, spec, rank) : full;
  };
  const ranks = spmd(sharded, tp, (rank) => ({
    ...feeds,
    params: new Map([...feeds.params].map(([name, full]) => [name, part(name, full, rank)])),
  }));
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
  return sharded;
}
