// Llama (samples/llama.ts) trained for ten steps against an independent PyTorch Llama
// (test/reference/llama_torch.py) from one init and the same tokens: every loss within 1e-4 relative,
// with grouped-query attention (the tiny preset: 4 query heads, 2 K/V heads). Then, through `stow train`
// alone, on a seeded Markov corpus: recomputed blocks (--checkpoint blocks) and model data offloaded to
// the host (--device-memory) give bitwise the plain run's losses, as their rewrites are exact by design;
// --tp 2 over MPI ranks, with a prime vocabulary so the vocabulary-parallel output layer is padded,
// gives them within 1e-5 (the ranks sum partial products in another order); and the emulated CUDA
// backend gives them within 1e-5. Fusion (the default) launches fewer kernels and moves fewer bytes than
// --fusion off, with bitwise its losses on the CPU and on emulated CUDA. A --tp that cannot cut the K/V
// heads is refused naming the op and why.
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, test } from "vitest";
import llama from "../../samples/llama.ts";
import { makeMarkovCorpus } from "../../src/data/synthetic.ts";
import { writeTokenFile } from "../../src/data/token_file.ts";
import { stow } from "../helpers/run.ts";
import { expectRelativelyClose, stowPlanJson, stowTrain } from "../helpers/stow_commands.ts";
import { type InitTensor, compareWithTorch, normalSampler, writeInit } from "../helpers/torch_compare.ts";

/** Hugging Face's Llama initialisation, drawn here: every linear and the embedding N(0, 0.02); RMSNorm weights near 1. */
function randomInit(config: typeof llama.presets.tiny) {
  return (file: string): void => {
    const normal = normalSampler(2024);
    const C = config.dim;
    const kv = config.kv_heads * (C / config.heads);
    // A larger std than 0.02, so that ten steps move the loss well away from ln(vocab).
    const dense = (name: string, out: number, inp: number): InitTensor => ({ name, shape: [out, inp], fill: () => normal(0.1) });
    const norm = (name: string): InitTensor => ({ name, shape: [C], fill: () => 1 + normal(0.1) });
    const tensors: InitTensor[] = [{ name: "tok_embeddings.weight", shape: [config.vocab, C], fill: () => normal(0.5) }];
    for (let l = 0; l < config.layers; l++) {
      const p = `layers.${l}`;
      tensors.push(
        dense(`${p}.attention.wq.weight`, C, C),
        dense(`${p}.attention.wk.weight`, kv, C),
        dense(`${p}.attention.wv.weight`, kv, C),
        dense(`${p}.attention.wo.weight`, C, C),
        dense(`${p}.feed_forward.w1.weight`, config.hidden, C),
        dense(`${p}.feed_forward.w2.weight`, C, config.hidden),
        dense(`${p}.feed_forward.w3.weight`, config.hidden, C),
        norm(`${p}.attention_norm.weight`),
        norm(`${p}.ffn_norm.weight`),
      );
    }
    tensors.push(norm("norm.weight"), dense("output.weight", config.vocab, C));
    writeInit(file, tensors);
  };
}

describe("Llama matches PyTorch", () => {
  test("tiny (grouped-query attention), 10 steps, global-norm clipping at 1.0", () => {
    // GPT-2's vocabulary: the comparison's tokens are the built-in corpus in GPT-2 tokens.
    const config = { ...llama.presets.tiny, vocab: 50257 };
    const losses = compareWithTorch({
      model: "samples/llama.ts",
      preset: "tiny",
      set: [`vocab=${config.vocab}`],
      config,
      script: "llama_torch.py",
      init: randomInit(config),
      gradClip: "1.0",
      batch: 4,
      seq: 32,
      steps: 10,
    });
    // The run must actually train: a comparison of flat losses would prove little.
    expect(losses[9]).toBeLessThan(losses[0] - 0.5);
  });
});

describe("Llama under recomputation, offload, tensor parallelism and the emulated CUDA backend", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "stow-llama-"));
  const data = path.join(dir, "markov.bin");
  const steps = 10;
  // A prime vocabulary: under --tp 2 the embedding and the output layer are padded to 2 x 126 rows.
  const tiny = ["samples/llama.ts", "--preset", "tiny", "--set", "vocab=251", "--batch", "4", "--seq", "32", "--threads", "1"];
  const train = (extra: string[], name: string) =>
    stowTrain(
      [...tiny, ...extra, "--data", data, "--steps", `${steps}`, "--lr", "3e-3", "--warmup-steps", "2"],
      path.join(dir, `${name}.jsonl`),
    );
  const losses = (m: Record<string, number>[]) => m.map((s) => s.loss);
  let plain: Record<string, number>[];
  let emulated: Record<string, number>[];

  beforeAll(() => {
    writeTokenFile(data, makeMarkovCorpus({ vocab: 251, k: 2, length: 4 * 32 * steps + 1, seed: 5 }).tokens);
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
    emulated = train(["--checkpoint", "none", "--backend", "cuda", "--emulate", "--precision", "fp32"], "emulated");
    expectRelativelyClose(losses(emulated), losses(plain), "emulated CUDA loss", 1e-5);
  });

  // The runs above are fused (the default): each generated kernel computes its ops' formulas in their
  // order, so the unfused plan's losses are the same bits, on the CPU and on the emulated CUDA backend.
  test("--fusion off: fewer kernels and less elementwise traffic fused, and bitwise the same losses on both backends", () => {
    const fused = stowPlanJson([...tiny, "--checkpoint", "none"]).fusion;
    const unfused = stowPlanJson([...tiny, "--checkpoint", "none", "--fusion", "off"]).fusion;
    expect(fused.groups).toBeGreaterThan(0);
    expect(unfused.groups).toBe(0);
    expect(fused.kernels_per_step).toBeLessThan(unfused.kernels_per_step);
    expect(unfused.kernels_per_step - fused.kernels_per_step).toBe(fused.kernels_saved);
    expect(fused.elementwise_bytes).toBeLessThan(unfused.elementwise_bytes);
    const cpu = train(["--checkpoint", "none", "--fusion", "off"], "unfused");
    expect(losses(cpu)).toEqual(losses(plain));
    expect(cpu.map((m) => m.grad_norm)).toEqual(plain.map((m) => m.grad_norm));
    const cuda = train(
      ["--checkpoint", "none", "--backend", "cuda", "--emulate", "--precision", "fp32", "--fusion", "off"],
      "unfused-emulated",
    );
    expect(losses(cuda)).toEqual(losses(emulated));
  });
});

test("--tp 4 with 2 K/V heads is refused at the reshape into heads, saying why", () => {
  const r = stow(["plan", "samples/llama.ts", "--preset", "tiny", "--batch", "2", "--tp", "4"]);
  expect(r.status).toBe(2);
  expect(r.stderr).toMatch(/^stow: samples\/llama\.ts:\d+:\d+: --tp 4 cannot split this reshape of \[2,64,32\] to \[2,64,2,16\]/);
  expect(r.stderr).toMatch(/4 ranks do not divide dimension 2 \(of size 2\) \(the 2 key\/value heads\)/);
});
