// End-to-end training through `stow train`, as a user runs it: the plan's predicted arena peak against
// the measured high-water mark, bitwise determinism, bitwise resume, and learning a corpus whose
// entropy rate is known.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, test } from "vitest";
import { builtinCorpusText } from "../../src/data/corpus.ts";
import { makeMarkovCorpus } from "../../src/data/synthetic.ts";
import { encodeText } from "../../src/data/tokenize.ts";
import { writeTokenFile } from "../../src/data/token_file.ts";
import { stowTrain } from "../helpers/stow_commands.ts";
import { readMetrics, stow } from "../helpers/run.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "stow-e2e-"));
const corpus = path.join(dir, "corpus.bin");
// A two-layer GPT-2 on GPT-2 tokens: small enough to build and step quickly, the full architecture.
const small = ["--preset", "mini", "--set", "layers=2", "--batch", "4", "--seq", "32", "--threads", "2"];

beforeAll(() => writeTokenFile(corpus, encodeText(builtinCorpusText()).slice(0, 20_000)));

const train = (extra: string[], metrics: string) => stowTrain(["samples/gpt2.ts", ...small, "--data", corpus, ...extra], metrics);

describe("stow train", () => {
  test("the measured arena high-water mark equals the plan's prediction, clip on and off", () => {
    for (const clip of ["1.0", "0"]) {
      const plan = stow(["plan", "samples/gpt2.ts", ...small, "--json", ...(clip === "0" ? ["--grad-clip", "0"] : [])]);
      expect(plan.status).toBe(0);
      const predicted = JSON.parse(plan.stdout).device_peak_bytes;
      const metrics = train(["--steps", "2", "--grad-clip", clip], path.join(dir, `peak-${clip}.jsonl`));
      expect(metrics.map((m) => m.device_peak_bytes)).toEqual([predicted, predicted]);
    }
  });

  test("same seed, data and threads give bitwise identical losses", () => {
    const a = train(["--steps", "4", "--seed", "7"], path.join(dir, "a.jsonl"));
    const b = train(["--steps", "4", "--seed", "7"], path.join(dir, "b.jsonl"));
    const c = train(["--steps", "4", "--seed", "8"], path.join(dir, "c.jsonl"));
    expect(b.map((m) => m.loss)).toEqual(a.map((m) => m.loss));
    expect(b.map((m) => m.grad_norm)).toEqual(a.map((m) => m.grad_norm));
    expect(c[0].loss).not.toEqual(a[0].loss); // the seed really reaches the initialisation
  });

  test("a run stopped and resumed gives the same losses as an uninterrupted one, bitwise", () => {
    const ckpt = path.join(dir, "stop.safetensors");
    const whole = train(["--steps", "6"], path.join(dir, "whole.jsonl"));
    const first = train(["--steps", "6", "--stop-after", "3", "--save", ckpt], path.join(dir, "first.jsonl"));
    const rest = train(["--steps", "6", "--resume", ckpt], path.join(dir, "rest.jsonl"));
    expect(first.map((m) => m.step)).toEqual([1, 2, 3]);
    expect(rest.map((m) => m.step)).toEqual([4, 5, 6]);
    expect([...first, ...rest].map((m) => m.loss)).toEqual(whole.map((m) => m.loss));
    expect([...first, ...rest].map((m) => m.lr)).toEqual(whole.map((m) => m.lr));
  });

  test("learns a Markov corpus to within 5% of its entropy rate", () => {
    const { tokens, entropyRate } = makeMarkovCorpus({ vocab: 64, k: 4, length: 250_000, seed: 7 });
    const data = path.join(dir, "markov.bin");
    writeTokenFile(data, tokens);
    const metrics = path.join(dir, "markov.jsonl");
    const r = stow([
      "train",
      "samples/gpt2.ts",
      "--set",
      "vocab=64",
      "--set",
      "seq=32",
      "--set",
      "layers=1",
      "--set",
      "dim=64",
      "--set",
      "heads=2",
      "--batch",
      "16",
      "--seq",
      "32",
      "--steps",
      "400",
      "--lr",
      "1e-2",
      "--warmup-steps",
      "20",
      "--data",
      data,
      "--no-sample",
      "--metrics",
      metrics,
      "--threads",
      "2",
    ]);
    expect(r.status).toBe(0);
    const losses = readMetrics(metrics).map((m) => m.loss);
    const tail = losses.slice(-25);
    const mean = tail.reduce((s, x) => s + x, 0) / tail.length;
    expect(losses[0]).toBeGreaterThan(Math.log(64) - 0.2); // starts near uniform guessing
    expect(mean).toBeLessThan(entropyRate * 1.05);
  });

  test("the standalone train binary from `stow compile` gives the same losses as `stow train`, bitwise", () => {
    const out = path.join(dir, "compiled");
    const c = stow(["compile", "samples/gpt2.ts", ...small, "-o", out]);
    expect(c.status, c.stderr).toBe(0);
    expect(JSON.parse(readFileSync(path.join(out, "plan.json"), "utf8")).params[0].name).toBe("transformer.wte.weight");
    const hyper = ["--steps", "3", "--lr", "2e-3", "--warmup-steps", "1", "--seed", "5", "--grad-clip", "1.0"];
    const viaAddon = train(hyper, path.join(dir, "addon.jsonl"));
    const metrics = path.join(dir, "standalone.jsonl");
    const r = spawnSync(
      path.join(out, "train"),
      ["--data", corpus, "--metrics", metrics, "--threads", "2", ...hyper, "--min-lr", "2e-4", "--weight-decay", "0.1"],
      { encoding: "utf8" },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(readMetrics(metrics).map((m) => m.loss)).toEqual(viaAddon.map((m) => m.loss));
  });

  test("a checkpoint carries the nanoGPT names, and generate samples from it", () => {
    const ckpt = path.join(dir, "gen.safetensors");
    train(["--steps", "2", "--save", ckpt], path.join(dir, "gen.jsonl"));
    const header = readFileSync(ckpt);
    const json = JSON.parse(header.subarray(8, 8 + Number(header.readBigUInt64LE(0))).toString("utf8"));
    expect(Object.keys(json)).toContain("transformer.h.1.mlp.c_proj.weight");
    expect(json["transformer.h.0.attn.c_attn.weight"].shape).toEqual([3 * 128, 128]);
    expect(Object.keys(json)).not.toContain("lm_head.weight"); // tied to wte, stored once
    const g = stow(["generate", ckpt, "--prompt", "export function", "--tokens", "5", "--temperature", "0", "--threads", "2"]);
    expect(g.stderr).not.toMatch(/stow:/);
    expect(g.status).toBe(0);
    expect(g.stdout.startsWith("export function")).toBe(true);
    expect(g.stdout.length).toBeGreaterThan("export function".length);
  });
});
