// Profiled warm-up: the per-node times a run measured (runtime/core/profile.cpp writes them), turned into
// the cost model's measured times, and set beside the model's predictions for `stow plan --profile`
// and the train command's re-plan message.
import { readFileSync } from "node:fs";
import { type MeasuredTimes, nodeSeconds, nodeSignature, simulateStep, CPU_DEFAULTS } from "../../ir/cost_model.ts";
import type { Graph, Node } from "../../ir/types.ts";
import { UserError } from "../../base/errors.ts";
import { type Plan, meshOf } from "../../plan/plan.ts";
import type { NodeProfile } from "../../plan/node_profile.ts";

/** AdamW on an offloaded chunk: it runs on the host worker, off the step's critical path. */
function hostUpdate(n: Node): boolean {
  return n.op === "adamw" && n.placement === "host";
}

export function readProfile(file: string): NodeProfile {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    throw new UserError(`${file}: not a profile (${error instanceof Error ? error.message : String(error)})`);
  }
  const p = json as Partial<NodeProfile>;
  if (typeof p.plan !== "string" || !Array.isArray(p.node_seconds) || !Array.isArray(p.step_seconds) || typeof p.steps !== "number")
    throw new UserError(`${file}: not a profile written by stow train (needs plan, steps, step_seconds, node_seconds)`);
  return p as NodeProfile;
}

/**
 * Mean measured seconds per node signature. Nodes that only hand work to the transfer engine (copies,
 * waits, host AdamW) are left out: their cost is the link's and the host's, which the model plays out.
 */
export function measuredTimes({ graph: g }: { graph: Graph }, profile: NodeProfile): MeasuredTimes {
  if (profile.node_seconds.length !== g.nodes.length)
    throw new UserError(`the profile has ${profile.node_seconds.length} nodes but the plan's training program has ${g.nodes.length}`);
  const sums = new Map<string, { total: number; count: number }>();
  g.nodes.forEach((n, i) => {
    if (hostUpdate(n) || nodeSeconds(n, CPU_DEFAULTS, new Map()) === 0) return;
    const key = nodeSignature(n);
    const s = sums.get(key) ?? { total: 0, count: 0 };
    s.total += profile.node_seconds[i];
    s.count++;
    sums.set(key, s);
  });
  return new Map([...sums].map(([k, s]) => [k, s.total / s.count]));
}

export interface OpTimes {
  op: string;
  count: number;
  predicted: number;
  measured: number;
}

/** Predicted (machine model) and measured seconds per op kind, largest measured first. */
export function timesByOp(plan: Plan, profile: NodeProfile): OpTimes[] {
  const g = plan.train.graph;
  const rows = new Map<string, OpTimes>();
  g.nodes.forEach((n, i) => {
    const predicted = hostUpdate(n) ? 0 : nodeSeconds(n, plan.machine, undefined, meshOf(plan.decisions));
    if (predicted === 0 && profile.node_seconds[i] < 1e-6) return;
    const r = rows.get(n.op) ?? { op: n.op, count: 0, predicted: 0, measured: 0 };
    r.count++;
    r.predicted += predicted;
    r.measured += profile.node_seconds[i];
    rows.set(n.op, r);
  });
  return [...rows.values()].sort((a, b) => b.measured - a.measured);
}

export function profileText(plan: Plan, profile: NodeProfile): string {
  const ms = (s: number) => `${(s * 1000).toFixed(1)} ms`.padStart(11);
  const rows = timesByOp(plan, profile);
  const mesh = meshOf(plan.decisions);
  const diskIo = plan.train.memory.diskIo;
  const model = simulateStep(plan.train.graph, plan.machine, { mesh, diskIo });
  const withMeasured = simulateStep(plan.train.graph, plan.machine, { measured: measuredTimes(plan.train, profile), mesh, diskIo });
  const measuredStep = profile.step_seconds.reduce((s, x) => s + x, 0) / profile.step_seconds.length;
  return [
    `profile    ${profile.steps} steps measured; step time: predicted ${ms(model.seconds).trim()} (machine model), ` +
      `${ms(withMeasured.seconds).trim()} (measured node times), measured ${ms(measuredStep).trim()}`,
    `  ${"op".padEnd(20)} ${"nodes".padStart(6)} ${"predicted".padStart(11)} ${"measured".padStart(11)}`,
    ...rows.slice(0, 12).map((r) => `  ${r.op.padEnd(20)} ${String(r.count).padStart(6)} ${ms(r.predicted)} ${ms(r.measured)}`),
  ].join("\n");
}
