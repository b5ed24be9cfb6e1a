// The edges of a finished run: a sample the model cannot take never fails the run; --steps 0 saves the
// initialisation; the standalone train binary and `stow train` share one set of defaults
// (runtime/run_contract.ts).
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, test } from "vitest";
import { readSafetensors } from "../../src/checkpoint/safetensors.ts";
import { makeMarkovCorpus } from "../../src/data/synthetic.ts";
import { writeTokenFile } from "../../src/data/token_file.ts";
import { RUN_DEFAULTS } from "../../runtime/run_contract.ts";
import { readMetrics, stow } from "../helpers/run.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "stow-edges-"));
const markov = path.join(dir, "markov64.bin");
// One small block on a 64-symbol vocabulary: a few seconds a run once built.
const tiny = [
  "samples/gpt2.ts",
  "--set",
  "vocab=64",
  "--set",
  "seq=16",
  "--set",
  "layers=1",
  "--set",
  "dim=32",
  "--set",
  "heads=2",
  "--batch",
  "2",
  "--threads",
  "2",
];

beforeAll(() => writeTokenFile(markov, makeMarkovCorpus({ vocab: 64, k: 4, length: 5_000, seed: 3 }).tokens));

describe("sampling never fails a finished run", () => {
  test("a prompt outside the vocabulary: one line, no sample, exit 0, the checkpoint saved", () => {
    const save = path.join(dir, "v64.safetensors");
    const r = stow(["train", ...tiny, "--data", markov, "--steps", "2", "--save", save]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    // The default prompt "export function " is bytes (vocab < 50257), and 'e' is 101 >= 64.
    const skipped = r.stdout.split("\n").filter((l) => l.startsWith("sample skipped"));
    expect(skipped).toEqual([
      `sample skipped: the prompt "export function " encodes (bytes) to token 101, outside the model's vocabulary of 64 tokens`,
    ]);
    expect(r.stdout).not.toMatch(/^sample:$/m);
    expect(existsSync(save)).toBe(true);
  });

  test("vocab 512 with the default prompt on the built-in corpus exits 0 and samples", () => {
    const r = stow([
      "train",
      "samples/gpt2.ts",
      "--set",
      "vocab=512",
      "--set",
      "layers=1",
      "--set",
      "dim=32",
      "--set",
      "heads=2",
      "--batch",
      "2",
      "--seq",
      "32",
      "--steps",
      "2",
      "--threads",
      "2",
      "--save",
      path.join(dir, "v512.safetensors"),
    ]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^sample:\nexport function /m);
  });

  test("stow generate refuses such a prompt with a message naming --prompt, exit 2", () => {
    const r = stow(["generate", path.join(dir, "v64.safetensors"), "--prompt", "export", "--threads", "2"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(
      /^stow: --prompt: the prompt "export" encodes \(bytes\) to token 101, outside the model's vocabulary of 64 tokens$/m,
    );
  });
});

describe("--steps 0", () => {
  test("saves the initialisation: step 0, and the parameters a seeded run starts from", () => {
    const init = path.join(dir, "init.safetensors");
    const r = stow(["train", ...tiny, "--data", markov, "--steps", "0", "--seed", "5", "--save", init, "--no-sample"]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const { metadata, tensors } = readSafetensors(init);
    expect(metadata.step).toBe("0");
    expect(tensors.has("transformer.wte.weight")).toBe(true);
    // Training from the exported init gives, bitwise, the losses of training from the seed itself.
    const hyper = ["--data", markov, "--steps", "3", "--no-sample"];
    const seeded = path.join(dir, "seeded.jsonl");
    const fromInit = path.join(dir, "from-init.jsonl");
    expect(stow(["train", ...tiny, ...hyper, "--seed", "5", "--metrics", seeded]).status).toBe(0);
    expect(stow(["train", ...tiny, ...hyper, "--seed", "9", "--init", init, "--metrics", fromInit]).status).toBe(0);
    expect(readMetrics(fromInit).map((m) => m.loss)).toEqual(readMetrics(seeded).map((m) => m.loss));
  });

  test("is refused below 0, naming the flag", () => {
    const r = stow(["train", ...tiny, "--data", markov, "--steps", "-1"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--steps: must be at least 0/);
  });
});

describe("--set takes floats", () => {
  test("PaLM's RoPE base and LayerNorm epsilon reach the traced ops; an integer field still refuses a fraction", () => {
    const ir = stow([
      "ir",
      "samples/palm.ts",
      "--set",
      "layers=1",
      "--batch",
      "1",
      "--seq",
      "8",
      "--after",
      "trace",
      "--set",
      "rope_base=5e5",
      "--set",
      "norm_eps=1e-6",
    ]);
    expect(ir.status, ir.stderr).toBe(0);
    const ops = (op: string) => ir.stdout.split("\n").filter((l) => l.includes(` = ${op}(`));
    expect(ops("rope")).toHaveLength(2);
    expect(ops("rope").every((l) => /\{base=500000[,}]/.test(l))).toBe(true);
    expect(ops("layernorm")).toHaveLength(2);
    expect(ops("layernorm").every((l) => /\{eps=0\.000001[,}]/.test(l))).toBe(true);
    const bad = stow(["ir", "samples/palm.ts", "--set", "layers=1.5"]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toBe("stow: --set layers: expected an integer (the preset's layers is 4), got 1.5\n");
  });
});

describe("one set of training defaults", () => {
  test("the binary's help shows them, and with no flags it takes the steps and learning rates of stow train", () => {
    const out = path.join(dir, "compiled");
    expect(stow(["compile", ...tiny, "-o", out]).status).toBe(0);
    const bin = path.join(out, "train");
    const help = spawnSync(bin, ["--help"], { encoding: "utf8" }).stdout;
    expect(help).toContain(`--steps N              total steps of the run; 0 saves the initialisation (default ${RUN_DEFAULTS.steps})`);
    expect(help).toContain(`(default ${RUN_DEFAULTS.lr})`);
    expect(help).toContain(`AdamW epsilon (default ${RUN_DEFAULTS.eps})`);

    // No hyperparameter flags on either side: the defaults alone decide steps, warm-up, schedule and lr.
    // Stopped after 25 steps: through the warm-up (20 steps at the default 1000) into the decay.
    const viaCli = path.join(dir, "defaults-cli.jsonl");
    const viaBin = path.join(dir, "defaults-bin.jsonl");
    expect(stow(["train", ...tiny, "--data", markov, "--stop-after", "25", "--no-sample", "--metrics", viaCli]).status).toBe(0);
    const r = spawnSync(bin, ["--data", markov, "--stop-after", "25", "--threads", "2", "--metrics", viaBin], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    const steps = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l))
      .filter((e) => e.event === "step");
    expect(steps.at(-1)).toMatchObject({ step: 25, steps: RUN_DEFAULTS.steps });
    const pick = (m: Record<string, number>) => [m.step, m.lr, m.loss, m.grad_norm];
    const cli = readMetrics(viaCli).map(pick);
    expect(cli).toHaveLength(25);
    expect(readMetrics(viaBin).map(pick)).toEqual(cli);
  });
});
