// The planner makes the same plans and gives the same `stow capacity` answers as it did before its
// planning-speed work: test/fixtures/plan_digests.json holds digests (test/helpers/plan_digest.ts) that
// the planner of commit 8b840cc made, run from an unchanged checkout of it with
// scripts/capture_plan_digests.ts; today's planner must reproduce each one exactly: the chosen and every
// considered candidate, the programs' IR and every offset of their memory plans. One change since is
// deliberate: "mini tp 2" predicts 1.18 ms less compute, the time the old cost model charged tp_copy,
// a view that runs no kernel (the op registry's kinds now decide both; issue 14).
import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { CAPACITY_CONFIGS, DIGEST_CONFIGS, capacityDigest, digestOf } from "../helpers/plan_digest.ts";

const expected = JSON.parse(readFileSync(new URL("../fixtures/plan_digests.json", import.meta.url), "utf8"));

describe("plans as the planner made them before its speed-up", () => {
  test.each(DIGEST_CONFIGS.map((c) => [c.name, c] as const))("%s", (name, c) => {
    expect(expected.plans[name]).toBeDefined();
    expect(JSON.parse(JSON.stringify(digestOf(c)))).toEqual(expected.plans[name]);
  });

  test.each(CAPACITY_CONFIGS.map((c) => [c.name, c] as const))("capacity: %s", (name, c) => {
    expect(expected.capacity[name]).toBeDefined();
    expect(JSON.parse(JSON.stringify(capacityDigest(c)))).toEqual(expected.capacity[name]);
  });
});
