// Whole training steps of a sample against an independent PyTorch model in test/reference/: both start
// from one safetensors init drawn here (not by Stowage's initialiser), read the same tokens and run
// the same AdamW schedule; each step's loss must agree to 1e-4 relative.
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { expect } from "vitest";
import { writeSafetensors } from "../../src/checkpoint/safetensors.ts";
import { builtinCorpusText } from "../../src/data/corpus.ts";
import { encodeText } from "../../src/data/tokenize.ts";
import { writeTokenFile } from "../../src/data/token_file.ts";
import { readMetrics, stow, torchReference } from "./run.ts";

export interface InitTensor {
  name: string;
  shape: number[];
  fill: () => number;
}

/** A seeded N(0, std^2) sampler: an LCG and Box-Muller, sharing nothing with Stowage's initialiser. */
export function normalSampler(seed = 12345): (std: number) => number {
  let s = seed;
  const uniform = () => ((s = (s * 1103515245 + 12345) % 2147483648) + 0.5) / 2147483648;
  return (std) => std * Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
}

export function writeInit(file: string, tensors: InitTensor[]): void {
  writeSafetensors(
    file,
    tensors.map((t) => ({
      name: t.name,
      shape: t.shape,
      data: Float32Array.from({ length: t.shape.reduce((a, b) => a * b, 1) }, t.fill),
    })),
  );
}

/**
 * The initial parameters of the fixtures' small pre-norm GPT (test/fixtures/models/rmsnorm_gpt.ts,
 * movement_gpt.ts): the token and position tables (named and sized by the fixture), blocks of norm1,
 * qkv, proj, norm2, up and down, a final norm and an untied head. Dense weights N(0, 1/fan_in), norm
 * weights 1 + N(0, 0.01), the token table N(0, 0.25), the position table N(0, 0.01), drawn in that order.
 */
export function preNormGptInit(
  config: { vocab: number; layers: number; dim: number },
  tables: { wte: string; wpe: string; positions: number },
  seed: number,
): (file: string) => void {
  const C = config.dim;
  const normal = normalSampler(seed);
  const dense = (name: string, out: number, inp: number): InitTensor => ({
    name,
    shape: [out, inp],
    fill: () => normal(1 / Math.sqrt(inp)),
  });
  const norm = (name: string): InitTensor => ({ name, shape: [C], fill: () => 1 + normal(0.1) });
  return (file) => {
    const tensors: InitTensor[] = [
      { name: tables.wte, shape: [config.vocab, C], fill: () => normal(0.5) },
      { name: tables.wpe, shape: [tables.positions, C], fill: () => normal(0.1) },
    ];
    for (let l = 0; l < config.layers; l++) {
      const b = `blocks.${l}`;
      tensors.push(
        norm(`${b}.norm1.weight`),
        dense(`${b}.qkv.weight`, 3 * C, C),
        dense(`${b}.proj.weight`, C, C),
        norm(`${b}.norm2.weight`),
        dense(`${b}.up.weight`, 4 * C, C),
        dense(`${b}.down.weight`, C, 4 * C),
      );
    }
    tensors.push(norm("norm.weight"), dense("head.weight", config.vocab, C));
    writeInit(file, tensors);
  };
}

export interface TorchComparison {
  model: string;
  preset: string;
  /** --set overrides of the preset (already applied to `config`). */
  set?: string[];
  /** The preset's config, as the reference's --config. */
  config: Record<string, number>;
  /** The reference script in test/reference/. */
  script: string;
  /** Writes the initial parameters under the model's names. */
  init: (file: string) => void;
  gradClip: string;
  batch: number;
  seq: number;
  steps: number;
}

const hyper = { lr: "3e-3", minLr: "3e-4", warmup: "3", wd: "0.1", beta1: "0.9", beta2: "0.95", eps: "1e-8" };

/** The schedule and AdamW flags both sides of a comparison take (stow train's and the references' alike). */
export function scheduleFlags(gradClip: string): string[] {
  return [
    ...["--lr", hyper.lr, "--min-lr", hyper.minLr, "--lr-schedule", "cosine", "--warmup-steps", hyper.warmup],
    ...["--weight-decay", hyper.wd, "--beta1", hyper.beta1, "--beta2", hyper.beta2, "--eps", hyper.eps],
    ...["--grad-clip", gradClip],
  ];
}

/** Trains both, checks every step's loss, and returns Stowage's losses. */
export function compareWithTorch(c: TorchComparison): number[] {
  const dir = mkdtempSync(path.join(os.tmpdir(), "stow-torch-"));
  const init = path.join(dir, "init.safetensors");
  const data = path.join(dir, "tokens.bin");
  const metrics = path.join(dir, "metrics.jsonl");
  c.init(init);
  // Tokens for steps - 3 batches: the last steps wrap around to the start, which exercises the loader's wrap.
  writeTokenFile(data, encodeText(builtinCorpusText()).slice(0, c.batch * c.seq * (c.steps - 3) + 1));
  const schedule = scheduleFlags(c.gradClip);
  const shape = ["--batch", `${c.batch}`, "--seq", `${c.seq}`, "--steps", `${c.steps}`];

  const ours = stow([
    "train",
    c.model,
    "--preset",
    c.preset,
    ...(c.set ?? []).flatMap((s) => ["--set", s]),
    ...shape,
    "--init",
    init,
    "--data",
    data,
    "--metrics",
    metrics,
    "--no-sample",
    "--threads",
    "2",
    ...schedule,
  ]);
  expect(ours.stderr).toBe("");
  expect(ours.status).toBe(0);
  const theirs = torchReference(c.script, [
    "--init",
    init,
    "--data",
    data,
    "--config",
    JSON.stringify(c.config),
    ...shape,
    ...schedule,
    "--threads",
    "1",
  ]);
  expect(theirs.stderr).toBe("");
  expect(theirs.status).toBe(0);
  const torchLosses: number[] = JSON.parse(theirs.stdout.trim().split("\n").pop()!).losses;
  const ourLosses = readMetrics(metrics).map((m) => m.loss);
  expect(ourLosses).toHaveLength(c.steps);
  expect(torchLosses).toHaveLength(c.steps);
  for (let i = 0; i < c.steps; i++) {
    const rel = Math.abs(ourLosses[i] - torchLosses[i]) / Math.abs(torchLosses[i]);
    expect(rel, `step ${i + 1}: ours ${ourLosses[i]} vs torch ${torchLosses[i]}`).toBeLessThan(1e-4);
  }
  return ourLosses;
}
