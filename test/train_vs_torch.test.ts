// Whole training steps against an independent PyTorch GPT-2 (test/reference/gpt2_torch.py): the same
// safetensors init, the same tokens, the same AdamW settings; ten losses must agree to 1e-4 relative.
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, test } from "vitest";
import { writeSafetensors } from "../src/checkpoint/safetensors.ts";
import { builtinCorpusText } from "../src/data/corpus.ts";
import { encodeText } from "../src/data/tokenize.ts";
import { writeTokenFile } from "../src/data/token_file.ts";
import gpt2 from "../samples/gpt2.ts";
import { readMetrics, stow, torchReference } from "./helpers/run.ts";

const config = gpt2.presets.mini;
const [batch, seq, steps] = [4, 64, 10];

/** Parameters drawn here, independently of Stowage's own initialiser, in nanoGPT's layout. */
function randomInit(file: string): void {
  let s = 12345;
  const uniform = () => ((s = (s * 1103515245 + 12345) % 2147483648) + 0.5) / 2147483648;
  const normal = (std: number) => std * Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
  const C = config.dim;
  const tensors: { name: string; shape: number[]; fill: () => number }[] = [
    { name: "transformer.wte.weight", shape: [config.vocab, C], fill: () => normal(0.02) },
    { name: "transformer.wpe.weight", shape: [config.seq, C], fill: () => normal(0.02) },
  ];
  for (let l = 0; l < config.layers; l++) {
    const h = `transformer.h.${l}`;
    tensors.push(
      { name: `${h}.ln_1.weight`, shape: [C], fill: () => 1 + normal(0.1) },
      { name: `${h}.ln_1.bias`, shape: [C], fill: () => normal(0.1) },
      { name: `${h}.attn.c_attn.weight`, shape: [3 * C, C], fill: () => normal(0.02) },
      { name: `${h}.attn.c_attn.bias`, shape: [3 * C], fill: () => normal(0.02) },
      { name: `${h}.attn.c_proj.weight`, shape: [C, C], fill: () => normal(0.02) },
      { name: `${h}.attn.c_proj.bias`, shape: [C], fill: () => normal(0.02) },
      { name: `${h}.ln_2.weight`, shape: [C], fill: () => 1 + normal(0.1) },
      { name: `${h}.ln_2.bias`, shape: [C], fill: () => normal(0.1) },
      { name: `${h}.mlp.c_fc.weight`, shape: [4 * C, C], fill: () => normal(0.02) },
      { name: `${h}.mlp.c_fc.bias`, shape: [4 * C], fill: () => normal(0.02) },
      { name: `${h}.mlp.c_proj.weight`, shape: [C, 4 * C], fill: () => normal(0.02) },
      { name: `${h}.mlp.c_proj.bias`, shape: [C], fill: () => normal(0.02) },
    );
  }
  tensors.push(
    { name: "transformer.ln_f.weight", shape: [C], fill: () => 1 + normal(0.1) },
    { name: "transformer.ln_f.bias", shape: [C], fill: () => normal(0.1) },
  );
  writeSafetensors(file, tensors.map((t) => ({
    name: t.name, shape: t.shape, data: Float32Array.from({ length: t.shape.reduce((a, b) => a * b, 1) }, t.fill),
  })));
}

const hyper = { lr: "3e-3", minLr: "3e-4", warmup: "3", wd: "0.1", beta1: "0.9", beta2: "0.95", eps: "1e-8" };

function compare(gradClip: string) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "stow-torch-"));
  const init = path.join(dir, "init.safetensors");
  const data = path.join(dir, "tokens.bin");
  const metrics = path.join(dir, "metrics.jsonl");
  randomInit(init);
  // Enough tokens that the ten steps wrap around the end once, which exercises the loader's wrap.
  writeTokenFile(data, encodeText(builtinCorpusText()).slice(0, batch * seq * 7 + 1));

  const ours = stow([
    "train", "samples/gpt2.ts", "--preset", "mini", "--batch", `${batch}`, "--seq", `${seq}`, "--steps", `${steps}`,
    "--init", init, "--data", data, "--metrics", metrics, "--no-sample", "--threads", "2",
    "--lr", hyper.lr, "--min-lr", hyper.minLr, "--lr-schedule", "cosine", "--warmup-steps", hyper.warmup,
    "--weight-decay", hyper.wd, "--beta1", hyper.beta1, "--beta2", hyper.beta2, "--eps", hyper.eps, "--grad-clip", gradClip,
  ]);
  expect(ours.stderr).toBe("");
  expect(ours.status).toBe(0);
  const theirs = torchReference([
    "--init", init, "--data", data, "--config", JSON.stringify(config), "--batch", `${batch}`, "--seq", `${seq}`,
    "--steps", `${steps}`, "--lr", hyper.lr, "--min-lr", hyper.minLr, "--lr-schedule", "cosine", "--warmup-steps", hyper.warmup,
    "--weight-decay", hyper.wd, "--beta1", hyper.beta1, "--beta2", hyper.beta2, "--eps", hyper.eps, "--grad-clip", gradClip,
    "--threads", "1",
  ]);
  expect(theirs.stderr).toBe("");
  expect(theirs.status).toBe(0);
  const torchLosses: number[] = JSON.parse(theirs.stdout.trim().split("\n").pop()!).losses;
  const ourLosses = readMetrics(metrics).map((m) => m.loss);
  expect(ourLosses).toHaveLength(steps);
  expect(torchLosses).toHaveLength(steps);
  for (let i = 0; i < steps; i++) {
    const rel = Math.abs(ourLosses[i] - torchLosses[i]) / Math.abs(torchLosses[i]);
    expect(rel, `step ${i + 1}: ours ${ourLosses[i]} vs torch ${torchLosses[i]}`).toBeLessThan(1e-4);
  }
  // The run must actually train: a comparison of flat losses would prove little.
  expect(ourLosses[steps - 1]).toBeLessThan(ourLosses[0] - 0.5);
}

describe("training steps match PyTorch", () => {
  test("gpt2 mini, 10 steps, clipping off", () => compare("0"));
  test("gpt2 mini, 10 steps, global-norm clipping at 1.0", () => compare("1.0"));
});
