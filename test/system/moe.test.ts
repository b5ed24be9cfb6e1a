// The MoE decoder (samples/moe.ts: top-2 of 4 experts picked with amax and comparisons, a dense dispatch)
// trained for ten steps against an independent PyTorch twin (test/reference/moe_torch.py: torch.topk and
// a sparse dispatch) from one init and the same tokens: every loss within 1e-4 relative. The init draws
// router weights large enough that routing is decided by clear margins (no exact ties, where the two
// tie rules could differ). The twin gives an expert that no token chose a zero gradient, not None, so
// AdamW steps it as Stowage does. Then, through `stow train` alone, on a seeded Markov corpus: recomputed blocks
// and model data offloaded to the host give bitwise the plain run's losses; --tp 2 (each expert cut
// Megatron-style, the routing replicated) gives them within 1e-5; so does the emulated CUDA backend.
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, test } from "vitest";
import moe from "../../samples/moe.ts";
import { makeMarkovCorpus } from "../../src/data/synthetic.ts";
import { writeTokenFile } from "../../src/data/token_file.ts";
import { expectRelativelyClose, stowPlanJson, stowTrain } from "../helpers/stow_commands.ts";
import { type InitTensor, compareWithTorch, normalSampler, writeInit } from "../helpers/torch_compare.ts";

function randomInit(config: typeof moe.presets.tiny) {
  return (file: string): void => {
    const normal = normalSampler(2025);
    const C = config.dim;
    const kv = config.kv_heads * (C / config.heads);
    const dense = (name: string, out: number, inp: number, std = 0.1): InitTensor => ({ name, shape: [out, inp], fill: () => normal(std) });
    const norm = (name: string): InitTensor => ({ name, shape: [C], fill: () => 1 + normal(0.1) });
    const tensors: InitTensor[] = [{ name: "tok_embeddings.weight", shape: [config.vocab, C], fill: () => normal(0.5) }];
    for (let l = 0; l < config.layers; l++) {
      const p = `layers.${l}`;
      tensors.push(
        dense(`${p}.attention.wq.weight`, C, C),
        dense(`${p}.attention.wk.weight`, kv, C),
        dense(`${p}.attention.wv.weight`, kv, C),
        dense(`${p}.attention.wo.weight`, C, C),
        // A router of std 1: logits of order 8, far apart, so that a rounding difference cannot flip a choice.
        dense(`${p}.feed_forward.gate.weight`, config.experts, C, 1.0),
      );
      for (let e = 0; e < config.experts; e++) {
        const q = `${p}.feed_forward.experts.${e}`;
        tensors.push(
          dense(`${q}.w1.weight`, config.hidden, C),
          dense(`${q}.w2.weight`, C, config.hidden),
          dense(`${q}.w3.weight`, config.hidden, C),
        );
      }
      tensors.push(norm(`${p}.attention_norm.weight`), norm(`${p}.ffn_norm.weight`));
    }
    tensors.push(norm("norm.weight"), dense("output.weight", config.vocab, C));
    writeInit(file, tensors);
  };
}

describe("the MoE decoder matches PyTorch", () => {
  test("tiny (top 2 of 4 experts), 10 steps, global-norm clipping at 1.0", () => {
    const config = { ...moe.presets.tiny, vocab: 50257 };
    const losses = compareWithTorch({
      model: "samples/moe.ts",
      preset: "tiny",
      set: [`vocab=${config.vocab}`],
      config,
      script: "moe_torch.py",
      init: randomInit(config),
      gradClip: "1.0",
      batch: 4,
      seq: 32,
      steps: 10,
    });
    expect(losses[9]).toBeLessThan(losses[0] - 0.5); // it trains
  });
});

describe("the MoE decoder under recomputation, offload, tensor parallelism and the emulated CUDA backend", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "stow-moe-"));
  const data = path.join(dir, "markov.bin");
  const steps = 4;
  const tiny = ["samples/moe.ts", "--preset", "tiny", "--set", "vocab=64", "--batch", "2", "--seq", "32", "--threads", "1"];
  const train = (extra: string[], name: string) =>
    stowTrain(
      [...tiny, ...extra, "--data", data, "--steps", `${steps}`, "--lr", "3e-3", "--warmup-steps", "2"],
      path.join(dir, `${name}.jsonl`),
    );
  const losses = (m: Record<string, number>[]) => m.map((s) => s.loss);
  let plain: Record<string, number>[];

  beforeAll(() => {
    writeTokenFile(data, makeMarkovCorpus({ vocab: 64, k: 2, length: 2 * 32 * steps + 1, seed: 7 }).tokens);
    plain = train(["--checkpoint", "none"], "plain");
  });

  test("--checkpoint blocks: bitwise the plain losses, at a smaller planned and measured peak", () => {
    const recomputed = train(["--checkpoint", "blocks"], "blocks");
    expect(losses(recomputed)).toEqual(losses(plain));
    expect(recomputed.map((m) => m.grad_norm)).toEqual(plain.map((m) => m.grad_norm));
    const plan = stowPlanJson([...tiny, "--checkpoint", "blocks"]);
    for (const m of recomputed) expect(m.device_peak_bytes).toBe(plan.device_peak_bytes);
    expect(recomputed[0].device_peak_bytes).toBeLessThan(plain[0].device_peak_bytes);
  });

  test("--device-memory below the resident peak: model data on the host, bitwise the plain losses, within budget", () => {
    const resident = stowPlanJson([...tiny, "--checkpoint", "none"]);
    const budget = Math.floor(resident.arena_bytes * 0.7);
    const flags = ["--checkpoint", "none", "--device-memory", String(budget)];
    const plan = stowPlanJson([...tiny, ...flags]);
    expect(plan.offload.model_data_on_host).toBe(true);
    const offloaded = train(flags, "offload");
    expect(losses(offloaded)).toEqual(losses(plain));
    for (const m of offloaded) expect(m.device_peak_bytes).toBeLessThanOrEqual(budget);
  });

  test("--tp 2 over MPI ranks: losses within 1e-5 relative of TP 1", () => {
    const tp2 = train(["--checkpoint", "none", "--tp", "2"], "tp2");
    expectRelativelyClose(losses(tp2), losses(plain), "TP 2 loss", 1e-5);
    expect(losses(plain)[steps - 1]).toBeLessThan(losses(plain)[0]); // it trains
  });

  test("the emulated CUDA backend in fp32: losses within 1e-5 relative of the CPU backend", () => {
    const emulated = train(["--checkpoint", "none", "--backend", "cuda", "--emulate", "--precision", "fp32"], "emulated");
    expectRelativelyClose(losses(emulated), losses(plain), "emulated CUDA loss", 1e-5);
  });
});
