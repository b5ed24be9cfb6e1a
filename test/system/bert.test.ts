// BERT (samples/bert.ts), an encoder with a masked-LM loss and three named inputs, trained for ten steps
// against an independent PyTorch BertForMaskedLM (test/reference/bert_torch.py) from one init and the
// same batches (the sample's own data loader, called here and handed to PyTorch as JSON, so a fault in
// how stow stores or feeds the batches shows as a mismatch): every loss within 1e-5 relative. Then,
// through `stow train` alone: recomputed layers (--checkpoint blocks) and model data offloaded to the
// host (--device-memory) give bitwise the plain run's losses; --tp 2 over MPI ranks gives them within
// 1e-5 (the ranks sum partial products in another order).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import bert, { maskedProgressions } from "../../samples/bert.ts";
import { readMetrics, stow, torchReference } from "../helpers/run.ts";
import { expectRelativelyClose, stowTrain } from "../helpers/stow_commands.ts";
import { type InitTensor, normalSampler, scheduleFlags, writeInit } from "../helpers/torch_compare.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "stow-bert-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const config = bert.presets.tiny;
const SEED = 1337; // stow train's default --seed, which the loader is called with

/** Every parameter under Hugging Face's names: linears and embeddings N(0, 0.1^2), biases small, LayerNorms near 1. */
function randomInit(file: string): void {
  const normal = normalSampler(2025);
  const C = config.dim;
  const tensors: InitTensor[] = [];
  const linear = (name: string, out: number, inp: number) =>
    tensors.push(
      { name: `${name}.weight`, shape: [out, inp], fill: () => normal(0.1) },
      { name: `${name}.bias`, shape: [out], fill: () => normal(0.02) },
    );
  const norm = (name: string) =>
    tensors.push(
      { name: `${name}.weight`, shape: [C], fill: () => 1 + normal(0.1) },
      { name: `${name}.bias`, shape: [C], fill: () => normal(0.02) },
    );
  tensors.push(
    { name: "bert.embeddings.word_embeddings.weight", shape: [config.vocab, C], fill: () => normal(0.5) },
    { name: "bert.embeddings.position_embeddings.weight", shape: [config.seq, C], fill: () => normal(0.1) },
  );
  norm("bert.embeddings.LayerNorm");
  for (let l = 0; l < config.layers; l++) {
    const p = `bert.encoder.layer.${l}`;
    for (const qkv of ["query", "key", "value"]) linear(`${p}.attention.self.${qkv}`, C, C);
    linear(`${p}.attention.output.dense`, C, C);
    norm(`${p}.attention.output.LayerNorm`);
    linear(`${p}.intermediate.dense`, config.hidden, C);
    linear(`${p}.output.dense`, C, config.hidden);
    norm(`${p}.output.LayerNorm`);
  }
  linear("cls.predictions.transform.dense", C, C);
  norm("cls.predictions.transform.LayerNorm");
  tensors.push({ name: "cls.predictions.bias", shape: [config.vocab], fill: () => normal(0.02) });
  writeInit(file, tensors);
}

test("BERT matches PyTorch: tiny, 10 steps of masked-LM, global-norm clipping at 1.0", () => {
  const [batch, steps] = [4, 10];
  const init = path.join(dir, "init.safetensors");
  const batches = path.join(dir, "batches.json");
  const metrics = path.join(dir, "torch.jsonl");
  randomInit(init);
  const data = Array.from({ length: steps }, (_, step) => maskedProgressions(config, { step, batch, seed: SEED }));
  writeFileSync(batches, JSON.stringify(data.map((b) => Object.fromEntries(Object.entries(b).map(([k, v]) => [k, Array.from(v)])))));
  const schedule = scheduleFlags("1.0");
  const ours = stow([
    ...["train", "samples/bert.ts", "--preset", "tiny", "--batch", `${batch}`, "--steps", `${steps}`, "--seed", `${SEED}`],
    ...["--init", init, "--metrics", metrics, "--save", path.join(dir, "torch.safetensors"), "--threads", "2", ...schedule],
  ]);
  expect(ours.stderr).toBe("");
  expect(ours.status).toBe(0);
  const theirs = torchReference("bert_torch.py", [
    ...["--init", init, "--batches", batches, "--config", JSON.stringify(config)],
    ...["--batch", `${batch}`, "--steps", `${steps}`, "--threads", "1", ...schedule],
  ]);
  expect(theirs.stderr).toBe("");
  expect(theirs.status).toBe(0);
  const reference: number[] = JSON.parse(theirs.stdout.trim().split("\n").pop()!).losses;
  const losses = readMetrics(metrics).map((m) => m.loss);
  // 1e-5, tighter than the 1e-4 of the other twins: the two agree to about 2e-7, and a twin with erf GELU
  // instead of the tanh form is off by up to 8e-5, which 1e-4 would let through.
  expectRelativelyClose(losses, reference, "loss against PyTorch", 1e-5);
  expect(losses[steps - 1]).toBeLessThan(losses[0] - 0.5); // it trains: a comparison of flat losses would prove little
});

describe("BERT under recomputation, offload and tensor parallelism", () => {
  const steps = 4;
  const tiny = ["samples/bert.ts", "--preset", "tiny", "--batch", "4", "--threads", "1"];
  const train = (flags: string[], name: string) =>
    stowTrain(
      [...tiny, ...flags, "--steps", `${steps}`, "--lr", "3e-3", "--warmup-steps", "1", "--save", path.join(dir, `${name}.safetensors`)],
      path.join(dir, `${name}.jsonl`),
    );
  const losses = (m: Record<string, number>[]) => m.map((s) => s.loss);
  let plain: Record<string, number>[];

  beforeAll(() => {
    plain = train(["--checkpoint", "none"], "plain");
  });

  test("--checkpoint blocks: bitwise the plain losses, at a smaller measured peak", () => {
    const recomputed = train(["--checkpoint", "blocks"], "blocks");
    expect(losses(recomputed)).toEqual(losses(plain));
    expect(recomputed[0].device_peak_bytes).toBeLessThan(plain[0].device_peak_bytes);
  });

  test("--device-memory below the resident peak: model data moved in each step, bitwise the plain losses, within budget", () => {
    const budget = Math.floor(plain[0].device_peak_bytes * 0.7); // the plain run's peak is its whole arena
    const offloaded = train(["--checkpoint", "none", "--device-memory", String(budget)], "offload");
    expect(losses(offloaded)).toEqual(losses(plain));
    for (const m of offloaded) {
      expect(m.device_peak_bytes).toBeLessThanOrEqual(budget);
      expect(m.h2d_bytes).toBeGreaterThan(0); // the plain run moves nothing
    }
    expect(plain.every((m) => m.h2d_bytes === 0)).toBe(true);
  });

  test("--tp 2 over MPI ranks: losses within 1e-5 relative of TP 1", () => {
    const tp2 = train(["--checkpoint", "none", "--tp", "2"], "tp2");
    expectRelativelyClose(losses(tp2), losses(plain), "TP 2 loss", 1e-5);
  });
});
