// PaLM small (samples/palm.ts, multi-query attention) under tensor parallelism: trained at --tp 2 over
// MPI ranks against the single-process run from the same seed and tokens (itself checked against
// PyTorch in palm.test.ts); per-rank parameter bytes against a count from the config, with the single
// K/V head replicated; the collectives and the device peak of every rank as the plan predicts them;
// and the collectives in `stow ir`.
import { expectRelativelyClose, stowPlanJson, stowTrain } from "../helpers/stow_commands.ts";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, test } from "vitest";
import palm from "../../samples/palm.ts";
import { makeMarkovCorpus } from "../../src/data/synthetic.ts";
import { writeTokenFile } from "../../src/data/token_file.ts";
import { stow } from "../helpers/run.ts";

const cfg = palm.presets.small;
const shape = ["--preset", "small", "--batch", "4", "--seq", "64"];
const steps = 10;
let dir: string;
let data: string;

/** Ranks share the machine's two cores: one thread each, and the single-process run alike. */
const train = (tp: number) =>
  stowTrain(
    [
      "samples/palm.ts",
      ...shape,
      "--tp",
      `${tp}`,
      "--threads",
      "1",
      "--data",
      data,
      "--lr",
      "3e-3",
      "--warmup-steps",
      "3",
      "--steps",
      `${steps}`,
    ],
    path.join(dir, `tp${tp}.jsonl`),
  );
const planJson = (tp: number) => stowPlanJson(["samples/palm.ts", ...shape, "--tp", `${tp}`, "--threads", "1"]);

/** Parameter floats per rank, counted from the config: q, out, gate, up and down cut; K/V and LayerNorms whole. */
function paramFloatsPerRank(tp: number) {
  const { vocab, layers, dim: C, heads, kv_heads } = cfg;
  const kv = kv_heads * (C / heads);
  const sharded = Math.ceil(vocab / tp) * C + (layers * (C * C + C * C + 3 * 4 * C * C)) / tp;
  const replicated = layers * (C + 2 * kv * C) + C;
  return { sharded, replicated };
}

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), "stow-tp-palm-"));
  data = path.join(dir, "tokens.bin");
  // A seeded Markov chain, not the built-in corpus: that is the project's own source, which every
  // change edits, and a window of it that trained well can turn into one that does not.
  writeTokenFile(data, makeMarkovCorpus({ vocab: 512, k: 2, length: 4 * 64 * steps + 1, seed: 3 }).tokens);
});

describe("PaLM small under tensor parallelism over MPI ranks", () => {
  let runs: Record<number, ReturnType<typeof train>>;

  test("at TP 2: ten losses within 1e-5 relative of TP 1, from the same init and data", () => {
    runs = { 1: train(1), 2: train(2) };
    const losses = (tp: number) => runs[tp].map((m) => m.loss as number);
    expectRelativelyClose(losses(2), losses(1), "TP 2 loss", 1e-5);
    expect(losses(1)[steps - 1]).toBeLessThan(losses(1)[0] - 0.5); // it trains
    const norms = (tp: number) => runs[tp].map((m) => m.grad_norm as number);
    expectRelativelyClose(norms(2), norms(1), "TP 2 gradient norm", 1e-4);
  });

  test("per-rank parameter bytes, collectives and device peak: as the plan predicts, on every rank", () => {
    const plan = planJson(2);
    const tp = plan.tensor_parallel;
    const { sharded, replicated } = paramFloatsPerRank(2);
    expect(tp.sharded_param_bytes_per_rank).toBe(4 * sharded);
    expect(tp.replicated_param_bytes).toBe(4 * replicated);
    // Per block: the all-reduces of out_proj and down forward; backward, those of the LayerNorm output
    // (one tp_copy for q, gate and up) and of the replicated K and V. Then the embedding's, the LM
    // head's, the loss's max and sums, the gradient norm's, and the broadcast tokens and targets.
    expect(tp.collective_calls_per_step).toBe(5 * cfg.layers + 1 + 1 + 2 + 1 + 2);
    for (const m of runs[2]) {
      expect(m.ranks).toBe(2);
      expect(m.rank_param_bytes).toEqual([tp.param_bytes_per_rank, tp.param_bytes_per_rank]);
      expect(m.rank_comm_calls).toEqual([tp.collective_calls_per_step, tp.collective_calls_per_step]);
      expect(m.rank_comm_bytes).toEqual([tp.collective_bytes_per_step, tp.collective_bytes_per_step]);
      expect(m.rank_device_peak_bytes).toEqual([plan.device_peak_bytes, plan.device_peak_bytes]);
    }
  });

  test("stow ir --tp 2 shows the collectives, and attention reading the replicated K/V head through tp_copy", () => {
    const r = stow(["ir", "samples/palm.ts", "--set", "layers=1", "--batch", "2", "--seq", "8", "--tp", "2"]);
    expect(r.status, r.stderr).toBe(0);
    for (const op of [
      "broadcast",
      "embedding_vp",
      "all_reduce",
      "tp_copy",
      "cross_entropy_vp_max",
      "cross_entropy_vp_sums",
      "cross_entropy_vp",
      "cross_entropy_vp_bwd",
      "embedding_vp_bwd",
      "sum_squares",
      "norm_from_squares",
    ])
      expect(r.stdout).toMatch(new RegExp(`= ${op}\\(`));
    // Each rank: 2 of the 4 query heads, the whole K/V head of 64 features.
    expect(r.stdout).toMatch(/name="h\.0\.attn\.q_proj\.weight", shape=\[128,256\], parallel="column"/);
    expect(r.stdout).toMatch(/name="h\.0\.attn\.k_proj\.weight", shape=\[64,256\]\}/);
    const copies = new Set([...r.stdout.matchAll(/(%\d+) = tp_copy\(/g)].map((m) => m[1]));
    const attention = r.stdout.match(/= attention\((%\d+), (%\d+), (%\d+)\)[^\n]*: f32\[2,2,8,64\]/);
    expect(attention).not.toBeNull();
    expect([copies.has(attention![2]), copies.has(attention![3])]).toEqual([true, true]);
  });
});
