// Budgets that shrink kernel tiles and move everything they can: the tiny GPT fits 30% of its resident
// peak, and with GPT-2's vocabulary a budget the default LM-head tile cannot meet plans a smaller tile.
// Each trains bitwise like the unlimited run (the LM-head kernels sum in fixed units, whatever the
// tile), within its budget.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { builtinCorpusText } from "../../src/data/corpus.ts";
import { makeMarkovCorpus } from "../../src/data/synthetic.ts";
import { encodeText } from "../../src/data/tokenize.ts";
import { writeTokenFile } from "../../src/data/token_file.ts";
import { stowPlanJson, stowTrain } from "../helpers/stow_commands.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "stow-tiles-"));
const corpus = path.join(dir, "corpus.bin");
const markov512 = path.join(dir, "markov512.bin");
const tiny = (vocab: number) =>
  ["samples/gpt2.ts", "--set", `vocab=${vocab}`, "--set", "seq=32", "--set", "layers=2", "--set", "dim=64"].concat([
    "--set",
    "heads=4",
    "--batch",
    "4",
    "--threads",
    "2",
  ]);

beforeAll(() => {
  writeTokenFile(corpus, encodeText(builtinCorpusText()).slice(0, 20_000));
  writeTokenFile(markov512, makeMarkovCorpus({ vocab: 512, k: 2, length: 100_000, seed: 3 }).tokens);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Trains `args` unlimited and under `budget`: the same losses and grad norms, bitwise, within the budget. */
function trainsLikeUnlimited(args: string[], budget: number, data: string, name: string): void {
  const planned = stowPlanJson([...args, "--device-memory", String(budget)]);
  expect(planned.arena_bytes).toBeLessThanOrEqual(budget);
  const steps = ["--steps", "20", "--data", data];
  const a = stowTrain([...args, ...steps], path.join(dir, `${name}-unlimited.jsonl`));
  const b = stowTrain([...args, ...steps, "--device-memory", String(budget)], path.join(dir, `${name}-budget.jsonl`));
  expect(b).toHaveLength(20);
  expect(b.map((m) => m.loss)).toEqual(a.map((m) => m.loss));
  expect(b.map((m) => m.grad_norm)).toEqual(a.map((m) => m.grad_norm));
  for (const m of b) expect(m.device_peak_bytes).toBeLessThanOrEqual(budget);
}

describe("budgets below what the default kernel tiles allow", () => {
  test("the tiny GPT in 30% of its resident peak trains bitwise like the unlimited run", () => {
    const resident = stowPlanJson(tiny(512));
    trainsLikeUnlimited(tiny(512), Math.floor(resident.arena_bytes * 0.3), markov512, "tiny");
  });

  test("with GPT-2's vocabulary, a smaller LM-head tile trains bitwise like the default", () => {
    const budget = 17_000_000;
    // The default tile's workspace is 16 MiB (128 rows x 32768 columns): the plan's is less, and the
    // plan names the tile it chose beside the default.
    const planned = stowPlanJson([...tiny(50257), "--device-memory", String(budget)]);
    expect(planned.breakdown.workspace).toBeLessThan(16 << 20);
    const tile = planned.kernel_tiles.lm_head;
    expect([tile.default_rows, tile.default_cols]).toEqual([128, 32768]);
    expect(tile.rows).toBe(128);
    expect(tile.cols).toBeLessThan(32768);
    expect(tile.workspace_bytes).toBeLessThan(tile.default_workspace_bytes);
    trainsLikeUnlimited(tiny(50257), budget, corpus, "wide");
  });
});
