// The planner makes the same plans and gives the same `stow capacity` answers as it did before its
// planning-speed work: test/fixtures/plan_digests.json holds digests (test/helpers/plan_digest.ts) that
// the planner of commit 8b840cc made, run from an unchanged checkout of it with
// scripts/capture_plan_digests.ts; today's planner must reproduce each one exactly: the chosen and every
// considered candidate, the programs' IR and every offset of their memory plans. One change since is
// deliberate: "mini tp 2" predicts 1.18 ms less compute, the time the old cost model charged tp_copy,
// a view that runs no kernel (the op registry's kinds now decide both; issue 14); and it predicts 2.36 ms
// less compute again, because its collectives' time is now its own (StepTime.networkSeconds, issue 18),
// with the step's time unchanged. The capacity search's
// path may differ (see below); its answers may not.
import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { CAPACITY_CONFIGS, DIGEST_CONFIGS, capacityDigest, digestOf } from "../helpers/plan_digest.ts";

const expected = JSON.parse(readFileSync(new URL("../fixtures/plan_digests.json", import.meta.url), "utf8"));

describe("plans as the planner made them before its speed-up", () => {
  test.each(DIGEST_CONFIGS.map((c) => [c.name, c] as const))("%s", (name, c) => {
    expect(expected.plans[name]).toBeDefined();
    expect(JSON.parse(JSON.stringify(digestOf(c)))).toEqual(expected.plans[name]);
  });

  // The capacity search may take another path to its answer (below a member the host cannot hold it
  // now goes to the member the planner's shortfall points at), so the probes are held to the same
  // verdict, member by member, and to no more plans; the answer and its plan are held exactly.
  test.each(CAPACITY_CONFIGS.map((c) => [c.name, c] as const))("capacity: %s", (name, c) => {
    const want = expected.capacity[name];
    expect(want).toBeDefined();
    const { probes, ...answer } = JSON.parse(JSON.stringify(capacityDigest(c)));
    const { probes: wantProbes, ...wantAnswer } = want;
    expect(answer).toEqual(wantAnswer);
    expect(probes.length).toBeLessThanOrEqual(wantProbes.length);
    for (const p of probes) {
      const before = wantProbes.find((q: { member: number }) => q.member === p.member);
      if (before !== undefined) expect(p).toEqual(before);
    }
  });
});
