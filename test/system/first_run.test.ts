// The first run a new user makes, `stow train` with no flags, at a reduced step count: the default model
// (GPT-2 `bytes`), batch, schedule and built-in corpus learn visibly, and the run ends with a sample made of
// the corpus's characters, a loss chart, and where its checkpoint and metrics went. README.md has the full
// run's figures.
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { expect, test } from "vitest";
import { builtinCorpusText } from "../../src/data/corpus.ts";
import { readMetrics, stow } from "../helpers/run.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "stow-first-"));

test("stow train's defaults learn the built-in corpus: the loss falls and the sample is the corpus's characters", () => {
  const save = path.join(dir, "ckpt.safetensors");
  const metrics = path.join(dir, "metrics.jsonl");
  // 60 of the default 1000 steps; everything else as a new user gets it (--threads: this machine's two cores).
  const r = stow(["train", "--steps", "60", "--threads", "2", "--save", save, "--metrics", metrics]);
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/^data built-in corpus \(Stowage's own source\), (tokenized as|cached) bytes/m);

  const losses = readMetrics(metrics).map((m) => m.loss);
  expect(losses).toHaveLength(60);
  expect(losses[0]).toBeGreaterThan(Math.log(256) - 0.5); // starts near guessing among 256 bytes
  const tail = losses.slice(-10).reduce((s, x) => s + x, 0) / 10;
  expect(tail).toBeLessThan(0.7 * losses[0]);

  const sample = /\nsample:\n([\s\S]*?)\n\nloss /.exec(r.stdout)?.[1];
  expect(sample?.startsWith("export function ")).toBe(true);
  const generated = sample!.slice("export function ".length);
  expect(generated.length).toBeGreaterThan(20);
  const corpusChars = new Set(builtinCorpusText());
  expect([...generated].filter((c) => !corpusChars.has(c))).toEqual([]);

  // The end of the run: the fall in one line, the chart, the files.
  expect(r.stdout).toMatch(/^loss \d\.\d{3} at step 1 -> \d\.\d{3}, the mean of the last 10 steps \(\d+% of the first\)$/m);
  expect(r.stdout.split("\n").filter((l) => l.includes("┤"))).toHaveLength(8);
  expect(r.stdout).toContain(`checkpoint ${save}`);
  expect(r.stdout).toContain(`metrics    ${metrics}`);
});
