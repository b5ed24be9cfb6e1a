// Drives native/index.ts against test/fixtures/fake_abi.c, a fake plan whose every number is a simple
// function of the options and the step, so each value the addon returns is checked against the
// formula written in the fixture, not against the addon's own output.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openPlan, type StowOptions } from "../../native/index.ts";
import { UserError } from "../../base/errors.ts";

const fixture = fileURLToPath(new URL("../fixtures/fake_abi.c", import.meta.url));
let dir: string;
let lib: string;
let libWithoutInfer: string;

function buildFake(out: string, ...defines: string[]): void {
  execFileSync("gcc", ["-shared", "-fPIC", "-O1", ...defines, "-o", out, fixture, "-lm"]);
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "stow-addon-"));
  lib = join(dir, "libfake.so");
  libWithoutInfer = join(dir, "libfake_noinfer.so");
  buildFake(lib);
  buildFake(libWithoutInfer, "-DOMIT_INFER");
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const options: StowOptions = {
  seed: 3,
  threads: 2,
  steps: 2,
  lr: 0.5,
  minLr: 0.125,
  lrSchedule: "constant",
  warmupSteps: 4,
  weightDecay: 0.25,
  beta1: 0.75,
  beta2: 0.875,
  eps: 0.0625,
  gradClip: 1,
};

describe("native addon", () => {
  it("opens a plan, steps, saves, infers and closes", () => {
    const metricsPath = join(dir, "metrics.jsonl");
    const s = openPlan(lib, { ...options, metricsPath, initPath: "/models/init.safetensors" });

    expect(s.info()).toEqual({
      vocab: 5,
      batch: 2,
      seq: 3,
      inferSeq: 4,
      arenaBytes: 4096,
      predictedTrainPeak: 3000,
      predictedInferPeak: 2000,
      paramCount: 30,
    });

    expect(s.step()).toEqual({
      step: 1,
      loss: 3 + 1 / 1,
      lr: 0.5,
      gradNorm: 0.5,
      tokens: 6,
      seconds: 0.25,
      devicePeakBytes: 100,
      hostPeakBytes: 7,
      h2dBytes: 11,
      d2hBytes: 5,
      deviceBudgetBytes: 0,
      transferWaitSeconds: 0.125,
    });
    const second = s.step();
    expect(second.step).toBe(2);
    expect(second.loss).toBe(3.5);

    const checkpoint = join(dir, "ckpt.txt");
    s.save(checkpoint);
    expect(readFileSync(checkpoint, "utf8")).toBe(
      "step=2 init=/models/init.safetensors resume=(none) threads=2 warmup=4 wd=0.25 beta1=0.75 beta2=0.875 eps=0.0625 keep=1\n",
    );
    s.save(checkpoint, 3);
    expect(readFileSync(checkpoint, "utf8")).toMatch(/ keep=3\n$/);

    const logits = s.infer(Int32Array.from([0, 4, 2, 1]), 1);
    expect(logits).toBeInstanceOf(Float32Array);
    expect(Array.from(logits)).toEqual([0, 1, 2, 3, 4].map((v) => 10 * 4 + v + 100));

    s.close();
    s.close();
    expect(readFileSync(metricsPath, "utf8")).toBe('{"step":1}\n{"step":2}\n');
    expect(() => s.step()).toThrow(/closed/);
  });

  it("maps the cosine schedule and a disabled clip", () => {
    const s = openPlan(lib, { ...options, lrSchedule: "cosine", gradClip: 0 });
    const r = s.step();
    expect(r.lr).toBe(0.125);
    expect(r.gradNorm).toBeNaN();
    s.close();
  });

  it("turns stow_error messages into UserErrors", () => {
    const s = openPlan(lib, options);
    s.step();
    s.step();
    expect(() => s.step()).toThrow(UserError);
    expect(() => s.step()).toThrow(new UserError("the run has 2 steps and all of them are done"));
    expect(() => s.infer(Int32Array.from([0, 1, 9, 2]), 0)).toThrow(new UserError("token 9 at position 2 is outside the vocabulary of 5"));
    expect(() => s.infer(Int32Array.from([0, 1, 2, 2]), 4)).toThrow(
      new UserError("position 4 is outside the inference window of 4 tokens"),
    );
    expect(() => s.save(join(dir, "no-such-dir", "ckpt"))).toThrow(/cannot write checkpoint .*no-such-dir\/ckpt/);
    s.close();
  });

  it("reports a failed stow_open with its message", () => {
    const missing = join(dir, "missing.bin");
    expect(() => openPlan(lib, { ...options, dataPath: missing })).toThrow(
      new UserError(`cannot open data file ${missing}: No such file or directory`),
    );
  });

  it("checks the arguments of infer and the options", () => {
    const s = openPlan(lib, options);
    expect(() => s.infer(Int32Array.from([1, 2]), 0)).toThrow(/exactly 4 tokens, got 2/);
    expect(() => s.infer(new Float32Array(4) as unknown as Int32Array, 0)).toThrow(TypeError);
    expect(() => s.infer(Int32Array.from([1, 2, 3, 4]), "last" as unknown as number)).toThrow(TypeError);
    s.close();
    expect(() => openPlan(lib, { ...options, lr: "fast" as unknown as number })).toThrow(/option lr must be a number/);
    expect(() => openPlan(lib, { ...options, lrSchedule: "linear" as "cosine" })).toThrow(/lrSchedule/);
  });

  it("names a missing library and a missing symbol", () => {
    const nowhere = join(dir, "nowhere.so");
    expect(() => openPlan(nowhere, options)).toThrow(UserError);
    expect(() => openPlan(nowhere, options)).toThrow(`cannot load the plan library ${nowhere}`);
    const notAPlan = join(dir, "not-a-plan.so");
    writeFileSync(notAPlan, "not an ELF file");
    expect(() => openPlan(notAPlan, options)).toThrow(/cannot load the plan library .*not-a-plan\.so/);
    expect(() => openPlan(libWithoutInfer, options)).toThrow(
      new UserError(`${libWithoutInfer} is not a Stowage plan: it does not define stow_infer`),
    );
  });
});
