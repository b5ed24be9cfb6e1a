// A device budget chooses for itself: with --device-memory and no --checkpoint, the planner weighs
// recomputing, moving activations and offloading model data (--checkpoint auto); and when nothing fits,
// the message names the smallest budget that fits and the flags that get there, which then plan.
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, test } from "vitest";
import { builtinCorpusText } from "../../src/data/corpus.ts";
import { encodeText } from "../../src/data/tokenize.ts";
import { writeTokenFile } from "../../src/data/token_file.ts";
import { stowPlanJson } from "../helpers/stow_commands.ts";
import { readMetrics, stow } from "../helpers/run.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "stow-budget-"));
const data = path.join(dir, "tokens.bin");
const tiny = [
  "samples/gpt2.ts",
  "--set",
  "vocab=512",
  "--set",
  "seq=32",
  "--set",
  "layers=2",
  "--set",
  "dim=64",
  "--set",
  "heads=4",
  "--batch",
  "4",
  "--threads",
  "2",
];

beforeAll(() => {
  writeTokenFile(data, encodeText(builtinCorpusText()).slice(0, 20_000));
});

const planJson = stowPlanJson;

describe("a device budget without a checkpoint mode", () => {
  test("GPT-2 mini in 48 MiB plans with auto (the plain step needs 159 MiB) and trains", () => {
    const budget = 48 * 2 ** 20;
    const plain = planJson(["samples/gpt2.ts", "--preset", "mini", "--threads", "2"]);
    expect(plain.arena_bytes).toBeGreaterThan(budget);
    const plan = planJson(["samples/gpt2.ts", "--preset", "mini", "--threads", "2", "--device-memory", "48MiB"]);
    expect(plan.decisions.requested_checkpoint).toBe("auto");
    expect(plan.arena_bytes).toBeLessThanOrEqual(budget);

    const metrics = path.join(dir, "mini48.jsonl");
    const r = stow([
      "train",
      "samples/gpt2.ts",
      "--preset",
      "mini",
      "--threads",
      "2",
      "--device-memory",
      "48MiB",
      "--data",
      data,
      "--steps",
      "2",
      "--profile-steps",
      "0",
      "--no-sample",
      "--metrics",
      metrics,
    ]);
    expect(r.status, r.stderr).toBe(0);
    const steps = readMetrics(metrics);
    expect(steps.map((m) => m.step)).toEqual([1, 2]);
    for (const m of steps) {
      expect(Number.isFinite(m.loss)).toBe(true);
      expect(m.device_peak_bytes).toBe(plan.device_peak_bytes);
      expect(m.device_budget_bytes).toBe(budget);
    }
  });

  test("--checkpoint given still rules: none in 48 MiB is refused, and the message says auto fits", () => {
    const r = stow(["plan", "samples/gpt2.ts", "--preset", "mini", "--threads", "2", "--device-memory", "48MiB", "--checkpoint", "none"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/with --checkpoint none/);
    expect(r.stderr).toMatch(/--checkpoint auto fits in --device-memory 48\.0 MiB/);
  });
});

describe("when nothing fits", () => {
  test("the message names the smallest budget that fits and its flags, and those flags plan within it", () => {
    const resident = planJson(tiny);
    // 10%: with every block's activations moved and the model data offloaded, 20% fits.
    const budget = Math.floor(resident.arena_bytes * 0.1);
    const refused = stow(["plan", ...tiny, "--device-memory", String(budget)]);
    expect(refused.status).toBe(2);
    const named = /The smallest budget that fits: .*`--device-memory (\d+) --checkpoint auto`/.exec(refused.stderr);
    expect(named, refused.stderr).not.toBeNull();
    const least = Number(named![1]);
    expect(least).toBeGreaterThan(budget);
    const plan = planJson([...tiny, "--device-memory", String(least), "--checkpoint", "auto"]);
    expect(plan.arena_bytes).toBeLessThanOrEqual(least);
    // Nothing below it fits: the planner refuses one byte less with the same message's budget.
    const below = stow(["plan", ...tiny, "--device-memory", String(least - 1)]);
    expect(below.status).toBe(2);
  });
});
