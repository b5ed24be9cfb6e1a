// Writes test/fixtures/plan_digests.json: the digest of each config in test/helpers/plan_digest.ts (plans
// and `stow capacity` searches), as the planner at hand makes them. test/unit/plan_digests.test.ts compares
// today's planner against the file. The file in the repository was written by the planner as it was
// before the planning-speed work (commit 8b840cc, run from an unchanged checkout of it), so the test
// shows that the faster planner makes the same plans and gives the same answers.
// Usage: npx tsx scripts/capture_plan_digests.ts [OUT]
import { writeFileSync } from "node:fs";
import { CAPACITY_CONFIGS, DIGEST_CONFIGS, capacityDigest, digestOf } from "../test/helpers/plan_digest.ts";

const out = process.argv[2] ?? "test/fixtures/plan_digests.json";
const timed = <T>(name: string, f: () => T): T => {
  const started = performance.now();
  const result = f();
  console.error(`${name}: ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return result;
};
const plans = Object.fromEntries(DIGEST_CONFIGS.map((c) => [c.name, timed(c.name, () => digestOf(c))]));
const capacity = Object.fromEntries(CAPACITY_CONFIGS.map((c) => [c.name, timed(c.name, () => capacityDigest(c))]));
writeFileSync(out, JSON.stringify({ plans, capacity }, null, 1) + "\n");
