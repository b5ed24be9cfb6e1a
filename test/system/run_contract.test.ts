// The run contract (runtime/run_contract.ts): the files generated from it are fresh, and the addon applies
// its defaults. The train binary is held to the same in test/system/runtime.test.ts (--print-options), and
// `stow train` to the binary in test/system/train_edges.test.ts (the same run with no flags on either side).
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { renderContract, repoRoot } from "../../runtime/contract/render.ts";
import { resolveOptions } from "../../native/index.ts";
import { RUN_DEFAULTS, defaultMinLr, defaultWarmupSteps } from "../../runtime/run_contract.ts";
import { resolvedOptions, sessionPart } from "../helpers/contract.ts";

describe("the run contract", () => {
  it("matches the files generated from it", () => {
    for (const [file, text] of renderContract())
      expect(readFileSync(path.join(repoRoot, file), "utf8"), `${file} is stale: run npm run gen:contract`).toBe(text);
  });

  it("keeps the defaults chosen for the first run", () => {
    expect(RUN_DEFAULTS).toMatchObject({
      steps: 1000,
      lr: 0.002,
      lr_schedule: "cosine",
      weight_decay: 0.1,
      beta1: 0.9,
      beta2: 0.95,
      eps: 1e-8,
      grad_clip: 1,
      seed: 1337,
    });
    expect(defaultMinLr(0.002)).toBeCloseTo(0.0002, 12);
    expect([defaultWarmupSteps(500), defaultWarmupSteps(25), defaultWarmupSteps(9)]).toEqual([20, 2, 0]);
  });

  it("is what the addon applies to what it is not given", () => {
    expect(resolveOptions({})).toEqual(sessionPart(resolvedOptions()));
    // Derived defaults follow the values given.
    expect(resolveOptions({ lr: 0.01, steps: 100 })).toEqual(sessionPart(resolvedOptions({ lr: 0.01, steps: 100 })));
    expect(resolveOptions({ dataPath: "d.bin", lrSchedule: "constant", minLr: 0 })).toEqual(
      sessionPart(resolvedOptions({ data_path: "d.bin", lr_schedule: "constant", min_lr: 0 })),
    );
  });
});
