// The op registry decides, for each op, whether a node runs a kernel and whether it costs compute
// time. Codegen and the cost model must agree with it on every node of real plans: a view that the
// cost model charged time for, or a kernel the planner thought free, would skew every plan.
import { describe, expect, test } from "vitest";
import { nodeSeconds } from "../../ir/cost_model.ts";
import { OPS, isComputeOp, runsKernel } from "../../ir/ops.ts";
import { kernelCalls } from "../../codegen/backends/cpu/kernel_calls.ts";
import { DIGEST_CONFIGS, planOf } from "../helpers/plan_digest.ts";

const CONFIGS = ["mini tp 2", "mini offloaded 70%", "mini moved 2, blocks:1, 4 Gbit/s", "mini selective"];

describe("the registry, codegen and the cost model agree on every node", () => {
  test.each(CONFIGS)("%s", (name) => {
    const plan = planOf(DIGEST_CONFIGS.find((c) => c.name === name)!);
    const tickets = new Map(plan.train.graph.nodes.map((n, i) => [n.id, i]));
    const disagreements: string[] = [];
    for (const n of plan.train.graph.nodes) {
      const emitted = kernelCalls(n, plan.train.memory, tickets).length > 0;
      if (emitted !== runsKernel(n.op)) disagreements.push(`${n.op}: codegen ${emitted ? "emits" : "emits no"} code`);
      if (nodeSeconds(n, plan.machine) > 0 !== isComputeOp(n.op)) disagreements.push(`${n.op}: cost ${nodeSeconds(n, plan.machine)} s`);
    }
    expect([...new Set(disagreements)]).toEqual([]);
  });

  test("host placement is offered only to ops the registry marks hostable, and the offload pass uses it", () => {
    const plan = planOf(DIGEST_CONFIGS.find((c) => c.name === "mini offloaded 70%")!);
    const onHost = plan.train.graph.nodes.filter((n) => n.placement === "host");
    expect(onHost.length).toBeGreaterThan(0);
    expect(onHost.every((n) => OPS[n.op].hostable === true)).toBe(true);
  });

  test("copies carry their payload: model data under offload, activations when moved", () => {
    const payloads = (name: string) => {
      const g = planOf(DIGEST_CONFIGS.find((c) => c.name === name)!).train.graph;
      return new Set(g.nodes.filter((n) => OPS[n.op].kind === "transfer").map((n) => n.payload));
    };
    expect(payloads("mini offloaded 70%")).toEqual(new Set(["model"]));
    expect(payloads("mini moved 2, blocks:1, 4 Gbit/s")).toEqual(new Set(["activation"]));
  });
});
