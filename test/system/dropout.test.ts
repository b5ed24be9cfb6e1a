// Dropout in training (test/fixtures/models/dropout_gpt.ts, issue 17): a run is reproducible; recomputed
// blocks (--checkpoint blocks) redraw the forward's masks, so their losses are bitwise the plain run's;
// --tp 2 (dropout on whole activations, the same mask on every rank) and the emulated CUDA backend (the
// same hash, kernel_math.h) give them within 1e-5; and the masks matter (another p trains differently).
// The mask's statistics are test/unit/dropout.test.ts's, its kernels test/system/op_kernels.test.ts's.
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, test } from "vitest";
import { makeMarkovCorpus } from "../../src/data/synthetic.ts";
import { writeTokenFile } from "../../src/data/token_file.ts";
import { expectRelativelyClose, stowTrain } from "../helpers/stow_commands.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "stow-dropout-"));
const data = path.join(dir, "markov.bin");
const steps = 5;
const model = ["test/fixtures/models/dropout_gpt.ts", "--batch", "4", "--seq", "32", "--threads", "1", "--steps", `${steps}`];
const train = (extra: string[], name: string) =>
  stowTrain([...model, ...extra, "--data", data, "--lr", "3e-3", "--warmup-steps", "2"], path.join(dir, `${name}.jsonl`));
const losses = (m: Record<string, number>[]) => m.map((s) => s.loss);
let plain: Record<string, number>[];

beforeAll(() => {
  writeTokenFile(data, makeMarkovCorpus({ vocab: 64, k: 2, length: 4 * 32 * steps + 1, seed: 9 }).tokens);
  plain = train(["--checkpoint", "none"], "plain");
});

describe("dropout in training", () => {
  test("two runs give the same losses, and recomputed blocks redraw the same masks: bitwise", () => {
    expect(losses(train(["--checkpoint", "none"], "again"))).toEqual(losses(plain));
    const recomputed = train(["--checkpoint", "blocks"], "blocks");
    expect(losses(recomputed)).toEqual(losses(plain));
    expect(recomputed.map((m) => m.grad_norm)).toEqual(plain.map((m) => m.grad_norm));
  });

  test("the masks matter: at another probability the losses differ", () => {
    const other = train(["--checkpoint", "none", "--set", "dropout=0.5"], "p05");
    expect(losses(other)[0]).not.toBe(losses(plain)[0]);
  });

  test("--tp 2 over MPI ranks: losses within 1e-5 relative of TP 1", () => {
    expectRelativelyClose(losses(train(["--checkpoint", "none", "--tp", "2"], "tp2")), losses(plain), "TP 2 loss", 1e-5);
  });

  test("the emulated CUDA backend in fp32: losses within 1e-5 relative of the CPU backend", () => {
    const emulated = train(["--checkpoint", "none", "--backend", "cuda", "--emulate", "--precision", "fp32"], "emulated");
    expectRelativelyClose(losses(emulated), losses(plain), "emulated CUDA loss", 1e-5);
  });
});
