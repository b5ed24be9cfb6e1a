// Activation checkpointing: the recompute pass keeps gradients bitwise, the planner's prediction
// still equals the measured peak, `blocks` keeps only block inputs across the step, `selective` only
// recomputes attention, and `auto` picks the cheapest mode that fits the budget.
import { expectSettingError } from "../helpers/expect_error.ts";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, test } from "vitest";
import gpt2 from "../../samples/gpt2.ts";
import { compilePlan } from "../../src/driver/compile.ts";
import { type CompileOptions, type Plan } from "../../plan/plan.ts";
import { builtinCorpusText } from "../../src/data/corpus.ts";
import { encodeText } from "../../src/data/tokenize.ts";
import { writeTokenFile } from "../../src/data/token_file.ts";
import { readMetrics, stow } from "../helpers/run.ts";
import { Embedding, Linear, Module, Tensor, checkpoint } from "../../src/dsl/index.ts";
import { traceProgram } from "../../src/driver/trace_program.ts";

const base: CompileOptions = { batch: 2, seq: 64, threads: 2, clip: true, checkpoint: "none" };
// A small vocabulary, so activations set the peak: with the LM head fused into the loss, mini's peak at
// vocab 50257 is its embedding gradients at the end of the backward, which no checkpoint mode changes.
const VOCAB = 512;
const plan = (config: typeof gpt2.presets.mini, opts: Partial<CompileOptions>): Plan =>
  compilePlan(gpt2, "samples/gpt2.ts", config, { ...base, ...opts });

describe("checkpoint modes", () => {
  test("train to bitwise equal losses and gradient norms, each at its predicted arena peak", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "stow-ckpt-"));
    const data = path.join(dir, "tokens.bin");
    writeTokenFile(
      data,
      encodeText(builtinCorpusText())
        .slice(0, 10_000)
        .map((t) => t % VOCAB),
    );
    const small = ["--set", "layers=2", "--set", `vocab=${VOCAB}`, "--batch", "4", "--seq", "32", "--threads", "2"];
    const runs = ["none", "selective", "blocks"].map((mode) => {
      const metrics = path.join(dir, `${mode}.jsonl`);
      const r = stow([
        "train",
        "samples/gpt2.ts",
        ...small,
        "--checkpoint",
        mode,
        "--steps",
        "3",
        "--data",
        data,
        "--no-sample",
        "--metrics",
        metrics,
      ]);
      expect(r.status, r.stderr).toBe(0);
      const predicted = JSON.parse(stow(["plan", "samples/gpt2.ts", ...small, "--checkpoint", mode, "--json"]).stdout);
      return { mode, metrics: readMetrics(metrics), predicted };
    });
    const [none, selective, blocks] = runs;
    for (const r of [selective, blocks]) {
      expect(r.metrics.map((m) => m.loss)).toEqual(none.metrics.map((m) => m.loss));
      expect(r.metrics.map((m) => m.grad_norm)).toEqual(none.metrics.map((m) => m.grad_norm));
    }
    for (const r of runs) expect(r.metrics.map((m) => m.device_peak_bytes)).toEqual([1, 2, 3].map(() => r.predicted.device_peak_bytes));
    expect(blocks.predicted.device_peak_bytes).toBeLessThan(none.predicted.device_peak_bytes);
    expect(blocks.predicted.checkpoint.recompute_flops).toBeGreaterThan(selective.predicted.checkpoint.recompute_flops);
    expect(none.predicted.checkpoint.recompute_flops).toBe(0);
  });

  test("blocks, GPT-2 124M at batch 8 x 1024: across the step each block keeps only its input", () => {
    const cfg = gpt2.presets["124M"];
    const p = plan(cfg, { batch: 8, seq: 1024, checkpoint: "blocks" });
    const nodes = p.train.graph.nodes;
    const firstBackward = nodes.findIndex((n) => n.phase === "backward");
    const spanning = p.train.memory.buffers.filter((b) => b.start < firstBackward && b.end >= firstBackward);
    // Of what a block computes, only its output (the next block's input, or ln_f's for the last) is kept.
    const fromBlocks = spanning.filter((b) => b.node.attrs.ckpt !== undefined);
    expect(fromBlocks.map((b) => b.node.attrs.ckpt).sort((a, b) => Number(a) - Number(b))).toEqual([...Array(cfg.layers).keys()]);
    // One output-sized buffer a block: the MLP projection's product, which the fused bias and residual add
    // (through the reshape between them) overwrites in place with the block's output.
    expect(fromBlocks.map((b) => b.bytes)).toEqual(fromBlocks.map(() => 8 * 1024 * cfg.dim * 4));
    // During the backward, recomputed values of at most one block are live at any moment.
    for (let i = firstBackward; i < nodes.length; i++) {
      const regions = new Set(
        p.train.memory.buffers.filter((b) => b.start <= i && i <= b.end && b.node.attrs.recompute === true).map((b) => b.node.attrs.ckpt),
      );
      expect(regions.size).toBeLessThanOrEqual(1);
    }
  });

  test("selective recomputes only the attention core and keeps no (batch, heads, seq, seq) tensor", () => {
    const cfg = gpt2.presets.mini;
    const p = plan(cfg, { batch: 4, seq: 128, checkpoint: "selective" });
    const recomputed = p.train.graph.nodes.filter((n) => n.attrs.recompute === true);
    expect(recomputed.map((n) => n.op)).toEqual(Array(cfg.layers).fill("attention"));
    const scores = 4 * cfg.heads * 128 * 128 * 4;
    expect(p.train.memory.buffers.filter((b) => b.kind !== "workspace" && b.bytes >= scores).every((b) => b.node.op !== "attention")).toBe(
      true,
    );
  });

  // Over a link this slow, moving saved activations to the host (activation_offload.test.ts) never pays,
  // so auto's only answer to a tight budget is recomputing.
  const slowLink = { linkGbps: 0.01 };

  test("auto picks the least recompute that fits the budget", () => {
    const cfg = { ...gpt2.presets.mini, layers: 2, vocab: VOCAB };
    const [none, selective, blocks] = (["none", "selective", "blocks"] as const).map((m) => plan(cfg, { checkpoint: m }).checkpoint);
    expect(blocks.arenaBytes).toBeLessThan(selective.arenaBytes);
    expect(selective.arenaBytes).toBeLessThan(none.arenaBytes);
    const pick = (budget: number) => plan(cfg, { checkpoint: "auto", deviceMemory: budget, ...slowLink }).checkpoint;
    expect(pick(none.arenaBytes).mode).toBe("none");
    const betweenSelectiveAndNone = pick(none.arenaBytes - 1);
    expect(betweenSelectiveAndNone.mode).toBe("selective");
    expect(betweenSelectiveAndNone.recomputeFlops).toBeLessThanOrEqual(blocks.recomputeFlops);
    const onlyBlocks = pick(selective.arenaBytes - 1);
    expect(onlyBlocks.mode).toBe("blocks");
    expect(onlyBlocks.arenaBytes).toBeLessThanOrEqual(selective.arenaBytes - 1);
    // Below every resident plan, model data moves to the host; below every plan at all, nothing fits.
    expect(plan(cfg, { checkpoint: "auto", deviceMemory: blocks.arenaBytes - 1, ...slowLink }).checkpoint.offload).toBe(true);
    expectSettingError(() => pick(2 ** 20), /does not fit in --device-memory 1\.0 MiB: it needs at least .* model data offloaded/);
  });

  test("auto recomputes only as many blocks as the budget needs", () => {
    const cfg = { ...gpt2.presets.mini, layers: 4, vocab: VOCAB };
    const all = plan(cfg, { checkpoint: "blocks" }).checkpoint;
    const selective = plan(cfg, { checkpoint: "selective" }).checkpoint;
    // Halfway between all blocks and selective: some blocks, but not all, must be recomputed.
    const budget = Math.floor((all.arenaBytes + selective.arenaBytes) / 2);
    const chosen = plan(cfg, { checkpoint: "auto", deviceMemory: budget, ...slowLink }).checkpoint;
    expect(chosen.mode).toBe("blocks");
    expect(chosen.regions).toBeGreaterThan(0);
    expect(chosen.regions).toBeLessThan(4);
    expect(chosen.arenaBytes).toBeLessThanOrEqual(budget);
    expect(chosen.recomputeFlops).toBeLessThan(all.recomputeFlops);
    // One block fewer would not fit: the choice is the least recompute that does.
    const fewer = plan(cfg, { checkpoint: "blocks", checkpointRegions: chosen.regions - 1 }).checkpoint;
    expect(fewer.arenaBytes).toBeGreaterThan(budget);
  });

  test("checkpoint() wraps a module or a function alike: one region per call", () => {
    class Tiny extends Module {
      readonly wte = new Embedding(16, 8);
      readonly first = new Linear(8, 8);
      readonly second = new Linear(8, 16);
      forward(tokens: Tensor): Tensor {
        const x = checkpoint(this.first, this.wte.forward(tokens)); // a module
        return checkpoint(() => this.second.forward(x)); // a function
      }
    }
    const g = traceProgram(new Tiny(), { vocab: 16, seq: 4 }, { batch: 2, seq: 4, kind: "train" });
    const regionOf = (op: string, nth: number) => g.nodes.filter((n) => n.op === op)[nth].attrs.ckpt;
    expect(regionOf("matmul", 0)).toBe(0);
    expect(regionOf("matmul", 1)).toBe(1);
    expect(g.nodes.find((n) => n.op === "embedding")!.attrs.ckpt).toBeUndefined(); // outside both
    // GPT-2 marks each block.
    const cfg = { ...gpt2.presets.mini, layers: 3 };
    const traced = traceProgram(gpt2.build(cfg), cfg, { batch: 1, seq: 8, kind: "train" });
    expect(new Set(traced.nodes.map((n) => n.attrs.ckpt).filter((r) => r !== undefined))).toEqual(new Set([0, 1, 2]));
  });

  test("stow ir shows recomputation as ordinary backward nodes", () => {
    const r = stow(["ir", "samples/gpt2.ts", "--set", "layers=1", "--checkpoint", "blocks", "--after", "recompute"]);
    expect(r.status).toBe(0);
    const backward = r.stdout.slice(r.stdout.indexOf("# backward"));
    expect(backward).toMatch(/= layernorm\(.*recompute=true/);
    expect(backward).toMatch(/= attention\(.*recompute=true/);
  });
});
