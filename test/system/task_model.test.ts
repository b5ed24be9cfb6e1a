// Task models: a model that declares named inputs and returns its own scalar loss. A regression model
// with float inputs and an MSE loss (test/fixtures/models/regression_task.ts) trains on its own data
// loader, within 1e-5 of an independent PyTorch twin (test/reference/regression_torch.py) fed the same
// batches as JSON; stopped at step 3 and resumed, it gives bitwise the unbroken run's losses (a batch is a function
// of the seed and the step); under --dp 2 each rank reads its rows of the global batch, and the losses
// agree with one process to float rounding. A classifier with integer inputs and no loader
// (classifier_task.ts) trains on synthetic batches, with no data at all. A loader that returns the wrong
// size and a loss that is not a scalar are errors at the model's line, exit 2; so is `stow generate` on a
// task model's checkpoint.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import regressionModel from "../fixtures/models/regression_task.ts";
import { stow, torchReference } from "../helpers/run.ts";
import { expectRelativelyClose, stowTrain } from "../helpers/stow_commands.ts";
import { normalSampler, scheduleFlags, writeInit } from "../helpers/torch_compare.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "stow-task-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const REGRESSION = "test/fixtures/models/regression_task.ts";
const steps = 6;
const regression = [REGRESSION, "--batch", "8", "--threads", "1", "--steps", `${steps}`, "--lr", "1e-2", "--warmup-steps", "1"];
const losses = (m: Record<string, number>[]) => m.map((s) => s.loss);

describe("a regression model with float inputs, an MSE loss and its own data loader", () => {
  const whole = () => stowTrain([...regression, "--save", path.join(dir, "whole.safetensors")], path.join(dir, "whole.jsonl"));
  let unbroken: number[];

  test("trains, and a run stopped at step 3 and resumed gives bitwise the unbroken run's losses", () => {
    unbroken = losses(whole());
    expect(unbroken).toHaveLength(steps);
    expect(unbroken[steps - 1]).toBeLessThan(0.5 * unbroken[0]); // it learns y from x
    const ckpt = path.join(dir, "half.safetensors");
    const first = stowTrain([...regression, "--stop-after", "3", "--save", ckpt], path.join(dir, "first.jsonl"));
    const rest = stowTrain([...regression, "--resume", ckpt, "--save", ckpt], path.join(dir, "rest.jsonl"));
    expect([...losses(first), ...losses(rest)]).toEqual(unbroken);
  });

  test("float inputs as PyTorch reads them: 10 steps within 1e-5 relative of test/reference/regression_torch.py", () => {
    const cfg = regressionModel.presets.tiny;
    const [batch, steps10, seed] = [8, 10, 1337];
    const normal = normalSampler(7);
    const init = path.join(dir, "regression_init.safetensors");
    writeInit(init, [
      { name: "fc1.weight", shape: [cfg.hidden, cfg.features], fill: () => normal(0.5) },
      { name: "fc1.bias", shape: [cfg.hidden], fill: () => normal(0.1) },
      { name: "fc2.weight", shape: [1, cfg.hidden], fill: () => normal(0.5) },
      { name: "fc2.bias", shape: [1], fill: () => normal(0.1) },
    ]);
    const batches = path.join(dir, "regression_batches.json");
    const data = Array.from({ length: steps10 }, (_, step) => regressionModel.data!(cfg, { step, batch, seed }));
    writeFileSync(batches, JSON.stringify(data.map((b) => ({ x: Array.from(b.x), y: Array.from(b.y) }))));
    const schedule = scheduleFlags("1.0");
    const shape = ["--batch", `${batch}`, "--steps", `${steps10}`];
    const ours = stowTrain(
      [REGRESSION, ...shape, "--seed", `${seed}`, "--init", init, "--threads", "1", ...schedule, "--save", path.join(dir, "t.safetensors")],
      path.join(dir, "torch_twin.jsonl"),
    );
    const theirs = torchReference("regression_torch.py", [
      ...["--init", init, "--batches", batches, "--config", JSON.stringify(cfg), ...shape, ...schedule],
    ]);
    expect(theirs.stderr).toBe("");
    expect(theirs.status).toBe(0);
    expectRelativelyClose(losses(ours), JSON.parse(theirs.stdout).losses, "loss against PyTorch", 1e-5);
  });

  test("stow generate refuses its checkpoint: a task model has no next-token logits", () => {
    unbroken ??= losses(whole());
    const r = stow(["generate", path.join(dir, "whole.safetensors"), "--prompt", "x"]);
    expect(r.stderr).toMatch(/declares its own inputs and loss, so it has no next-token logits to sample from/);
    expect(r.status).toBe(2);
  });

  test("--dp 2: each rank reads its rows of the global batch; losses within 1e-5 relative of one process", () => {
    unbroken ??= losses(whole());
    const dp2 = stowTrain([...regression, "--dp", "2", "--save", path.join(dir, "dp2.safetensors")], path.join(dir, "dp2.jsonl"));
    expectRelativelyClose(losses(dp2), unbroken, "--dp 2 loss", 1e-5);
  });
});

test("a classifier with integer inputs and no data loader trains on synthetic batches", () => {
  const m = stowTrain(
    [
      "test/fixtures/models/classifier_task.ts",
      "--batch",
      "4",
      "--steps",
      "3",
      "--threads",
      "1",
      "--save",
      path.join(dir, "c.safetensors"),
    ],
    path.join(dir, "classifier.jsonl"),
  );
  expect(m).toHaveLength(3);
  // Three classes and small initial weights: the first loss is that of a uniform guess.
  expect(Math.abs(m[0].loss - Math.log(3))).toBeLessThan(0.01);
});

describe("mistakes in a task model are reported at its line, exit 2", () => {
  const run = (mistake: number) =>
    stow([
      "train",
      REGRESSION,
      "--batch",
      "8",
      "--steps",
      "2",
      "--set",
      `mistake=${mistake}`,
      "--save",
      path.join(dir, "never.safetensors"),
    ]);
  const at = (line: string) => new RegExp(`^stow: test/fixtures/models/regression_task\\.ts:\\d+:\\d+: ${line}`);

  // The loader's other mistakes (dtype, a throw) are test/unit/task_data.test.ts's, in process.
  test.each([
    [2, 'data: step 0: input "x" must hold 32 values \\(\\[batch 8, 4\\], flattened\\), got 31'],
    [3, "forward must return the loss, a float scalar \\(shape \\[\\]\\), got f32 \\[8,1\\]"],
  ])("mistake %i", (mistake, message) => {
    const r = run(mistake);
    expect(r.stderr).toMatch(at(message));
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(r.status).toBe(2);
  });
});
