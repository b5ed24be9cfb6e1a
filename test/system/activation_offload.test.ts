// Saved activations in host memory (ir/passes/offload_activations.ts): a block's saved values go out in
// the forward and come back for the backward. The step must compute bitwise what the plain step does, at
// the planned peak, moving the planned bytes; and `--checkpoint auto` must move or recompute, per block,
// whichever the cost model finds faster, never slower than any choice forced by hand.
import { expectSettingError } from "../helpers/expect_error.ts";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, test } from "vitest";
import gpt2 from "../../samples/gpt2.ts";
import { type CompileOptions, type Plan } from "../../plan/plan.ts";
import { DoesNotFitError } from "../../plan/choose.ts";
import { compilePlan } from "../../src/driver/compile.ts";
import { builtinCorpusText } from "../../src/data/corpus.ts";
import { encodeText } from "../../src/data/tokenize.ts";
import { writeTokenFile } from "../../src/data/token_file.ts";
import { stowPlanJson, stowTrain } from "../helpers/stow_commands.ts";
import { stow } from "../helpers/run.ts";

// A small vocabulary, so that activations, not the embedding's gradient, set the peak (see checkpoint.test.ts).
const VOCAB = 512;
const dir = mkdtempSync(path.join(os.tmpdir(), "stow-actmove-"));
const data = path.join(dir, "tokens.bin");
const cfg = { ...gpt2.presets.mini, layers: 4, vocab: VOCAB };
const base: CompileOptions = { batch: 2, seq: 64, threads: 2, clip: true, checkpoint: "none" };
const plan = (opts: Partial<CompileOptions>): Plan => compilePlan(gpt2, "samples/gpt2.ts", cfg, { ...base, ...opts });

const planJson = stowPlanJson;

beforeAll(() => {
  writeTokenFile(
    data,
    encodeText(builtinCorpusText())
      .slice(0, 10_000)
      .map((t) => t % VOCAB),
  );
});

describe("moved activations", () => {
  test("train bitwise like the plain step, at the planned peak, moving the planned bytes over a throttled link, also beside offloaded model data", () => {
    const model = ["samples/gpt2.ts", "--set", "layers=4", "--set", `vocab=${VOCAB}`, "--batch", "4", "--seq", "64", "--threads", "2"];
    // Two blocks moved and the next one recomputed: both answers in one step.
    const moved = [...model, "--move-activations", "2", "--checkpoint", "blocks:1", "--link-gbps", "4"];
    const planned = planJson(moved);
    const plain = planJson(model);
    expect(planned.checkpoint.moved_regions).toBe(2);
    expect(planned.checkpoint.regions).toBe(1);
    expect(planned.checkpoint.moved.map((r: { region: number }) => r.region)).toEqual(expect.arrayContaining([0, 1]));
    expect(planned.device_peak_bytes).toBeLessThan(plain.device_peak_bytes);
    // Only activations move: each goes out once and comes back once.
    expect(planned.offload.model_data_on_host).toBe(false);
    expect(planned.offload.transfer_bytes_per_step).toBe(2 * planned.checkpoint.moved_bytes_per_step);
    expect(planned.host_bytes).toBe(planned.checkpoint.moved_bytes_per_step);

    const run = (args: string[], name: string) => {
      const metrics = path.join(dir, `${name}.jsonl`);
      return stowTrain([...args, "--steps", "3", "--data", data], metrics);
    };
    const a = run(model, "plain");
    const b = run(moved, "moved");
    expect(b.map((m) => m.loss)).toEqual(a.map((m) => m.loss));
    expect(b.map((m) => m.grad_norm)).toEqual(a.map((m) => m.grad_norm));
    for (const m of b) {
      expect(m.device_peak_bytes).toBe(planned.device_peak_bytes);
      expect(m.d2h_bytes).toBe(planned.checkpoint.moved_bytes_per_step);
      expect(m.h2d_bytes).toBe(planned.checkpoint.moved_bytes_per_step);
      expect(m.host_peak_bytes).toBeGreaterThanOrEqual(planned.host_bytes);
    }
    for (const m of a) expect(m.device_peak_bytes).toBe(plain.device_peak_bytes);

    // Under a budget that also sends model data to the host, both kinds share the link and the host region.
    const both = [...model, "--move-activations", "2", "--device-memory", String(Math.floor(0.6 * plain.arena_bytes)), "--link-gbps", "8"];
    const bothPlan = planJson(both);
    expect(bothPlan.offload.model_data_on_host).toBe(true);
    expect(bothPlan.checkpoint.moved_regions).toBe(2);
    // No profiled warm-up, so that every step runs the plan above.
    const c = run([...both, "--profile-steps", "0"], "both");
    expect(c.map((m) => m.loss)).toEqual(a.map((m) => m.loss));
    expect(c.map((m) => m.grad_norm)).toEqual(a.map((m) => m.grad_norm));
    for (const m of c) {
      expect(m.device_peak_bytes).toBe(bothPlan.device_peak_bytes);
      expect(m.h2d_bytes + m.d2h_bytes).toBe(bothPlan.offload.transfer_bytes_per_step);
      expect(m.d2h_bytes).toBeGreaterThan(bothPlan.checkpoint.moved_bytes_per_step);
    }
  });

  test("when neither whole blocks on the host nor checkpoints on the device fit, auto recomputes every block and moves its checkpoint; bitwise", () => {
    // Long rows: activations outweigh model data. The budgets were found by planning: 26000 KiB of device memory
    // cannot keep the 4 checkpoints with model data offloaded (28000 KiB can), and 20000 KiB of host memory
    // holds the model data and the checkpoints but not whole blocks' activations (those need about 70 MiB).
    const model = ["samples/gpt2.ts", "--set", "layers=4", "--set", `vocab=${VOCAB}`, "--batch", "16", "--seq", "128", "--threads", "2"];
    const budgeted = [...model, "--device-memory", "26000KiB", "--host-memory", "20000KiB"];
    const planned = planJson(budgeted);
    expect(planned.checkpoint.mode).toBe("blocks");
    expect(planned.checkpoint.regions).toBe(4);
    expect(planned.checkpoint.moved_regions).toBe(4);
    expect(planned.checkpoint.moves_checkpoints_only).toBe(true);
    // What moves is one checkpoint a block, its output: batch x seq x dim floats.
    expect(planned.checkpoint.moved.map((r: { bytes: number }) => r.bytes)).toEqual(Array(4).fill(16 * 128 * 128 * 4));
    // No profiled warm-up, so that every step runs the plan above; the plain step keeps everything.
    const a = stowTrain([...model, "--steps", "3", "--data", data], path.join(dir, "plain-long.jsonl"));
    const b = stowTrain([...budgeted, "--steps", "3", "--data", data, "--profile-steps", "0"], path.join(dir, "checkpoints.jsonl"));
    expect(b.map((m) => m.loss)).toEqual(a.map((m) => m.loss));
    expect(b.map((m) => m.grad_norm)).toEqual(a.map((m) => m.grad_norm));
    for (const m of b) {
      expect(m.device_peak_bytes).toBe(planned.device_peak_bytes);
      expect(m.h2d_bytes + m.d2h_bytes).toBe(planned.offload.transfer_bytes_per_step);
    }
  });

  test("a moved block keeps nothing on the device across the step; the backward reads its values through copies", () => {
    const p = plan({ moveActivations: 1 });
    const nodes = p.train.graph.nodes;
    const firstBackward = nodes.findIndex((n) => n.phase === "backward");
    const spanning = p.train.memory.buffers.filter((b) => b.start < firstBackward && b.end >= firstBackward);
    expect(spanning.filter((b) => b.node.attrs.ckpt === 0)).toEqual([]);
    // The kept blocks still hold theirs.
    expect(spanning.some((b) => b.node.attrs.ckpt === 1)).toBe(true);
    // No backward node reads a value block 0 computed; it reads views of the copies that came back.
    const backwardReads = nodes.slice(firstBackward).flatMap((n) => n.inputs);
    expect(backwardReads.filter((v) => v.producer.phase === "forward" && v.producer.attrs.ckpt === 0)).toEqual([]);
    const out = nodes.filter((n) => n.op === "copy_d2h");
    const back = nodes.filter((n) => n.op === "chunk_h2d");
    expect(out.length).toBeGreaterThan(0);
    expect(back.map((n) => n.attrs.activation).sort()).toEqual(out.map((n) => n.attrs.name).sort());
    // Every copy out is waited for in the forward, every copy in before its first reader.
    for (const n of out) expect(nodes.findIndex((w) => w.op === "wait" && w.inputs[0] === n.outputs[0])).toBeLessThan(firstBackward);
    expect(p.hostBytes).toBe(p.checkpoint.movedBytes);
    expect(p.checkpoint.transferBytes).toBe(2 * p.checkpoint.movedBytes);
  });

  test("stow ir shows the copies; bad counts are errors naming the flag", () => {
    const model = ["samples/gpt2.ts", "--set", "layers=2", "--set", `vocab=${VOCAB}`, "--batch", "2", "--seq", "16"];
    const ir = stow(["ir", ...model, "--move-activations", "1", "--after", "move-activations"]);
    expect(ir.status, ir.stderr).toBe(0);
    expect(ir.stdout).toMatch(/= copy_d2h\(%\d+\) \{name="act\.0\.0"\}/);
    expect(ir.stdout.slice(ir.stdout.indexOf("# backward"))).toMatch(/= chunk_h2d\(%\d+\) \{activation="act\.0\.0"/);
    expect(ir.stdout).not.toMatch(/act\.1\./);
    const tooMany = stow(["plan", ...model, "--move-activations", "2", "--checkpoint", "blocks:1"]);
    expect(tooMany.status).toBe(2);
    expect(tooMany.stderr).toMatch(/--move-activations 2 with --checkpoint blocks:1: the model marks only 2 checkpoint regions/);
    expectSettingError(
      () => plan({ moveActivations: 1, checkpoint: "auto", deviceMemory: 2 ** 30 }),
      /--move-activations: --checkpoint auto chooses/,
    );
  });

  test("auto moves when the link makes it cheaper than recomputing, recomputes when it does not; never slower than a forced choice", () => {
    const none = plan({}).checkpoint;
    const selective = plan({ checkpoint: "selective" }).checkpoint;
    // Too small for the plain step: something must be recomputed or moved.
    const tight = none.arenaBytes - 1;
    expect(selective.arenaBytes).toBeLessThanOrEqual(tight);
    const L = cfg.layers;
    // Every choice by hand: none or selective with 0..L blocks moved, or R blocks recomputed after M moved.
    const forced: Partial<CompileOptions>[] = [];
    for (let m = 0; m <= L; m++) {
      forced.push({ checkpoint: "none", moveActivations: m }, { checkpoint: "selective", moveActivations: m });
      for (let r = 1; m + r <= L; r++) forced.push({ checkpoint: "blocks", checkpointRegions: r, moveActivations: m });
    }
    const chosenAt = (linkGbps: number, budget = tight) => {
      const chosen = plan({ checkpoint: "auto", deviceMemory: budget, linkGbps }).checkpoint;
      expect(chosen.arenaBytes).toBeLessThanOrEqual(budget);
      expect(chosen.offload).toBe(false);
      const alternatives = forced
        .map((f) => plan({ ...f, deviceMemory: budget, linkGbps }).checkpoint)
        .filter((c) => !c.offload && c.arenaBytes <= budget);
      expect(alternatives.length).toBeGreaterThan(1);
      for (const c of alternatives) expect(chosen.predicted.seconds).toBeLessThanOrEqual(c.predicted.seconds * (1 + 1e-9));
      return chosen;
    };
    // 1000 Gbit/s: a block's saved values cross in microseconds, hidden behind compute.
    const fast = chosenAt(1000);
    expect(fast.moved).toBeGreaterThan(0);
    expect(fast.recomputeFlops).toBeLessThan(selective.recomputeFlops);
    // 0.01 Gbit/s: moving a block would take longer than the step; recompute instead.
    const slow = chosenAt(0.01);
    expect(slow.moved).toBe(0);
    expect(slow.recomputeFlops).toBeGreaterThan(0);
    // Between all blocks recomputed and selective: several blocks must go, one way or the other.
    const all = plan({ checkpoint: "blocks" }).checkpoint;
    for (const f of [0.25, 0.5, 0.75]) {
      const deep = chosenAt(1000, Math.floor(all.arenaBytes + f * (selective.arenaBytes - all.arenaBytes)));
      expect(deep.moved).toBeGreaterThan(0);
    }
    expect(chosenAt(0.01, Math.floor((all.arenaBytes + selective.arenaBytes) / 2)).moved).toBe(0);
  });

  test("with model data offloaded too, auto moves activations where that frees room for model data, never slower than a forced choice", () => {
    const opts = { batch: 4, linkGbps: 1000 };
    const budget = Math.floor(0.45 * plan(opts).checkpoint.arenaBytes);
    const chosen = plan({ ...opts, checkpoint: "auto", deviceMemory: budget }).checkpoint;
    expect(chosen.offload).toBe(true);
    expect(chosen.arenaBytes).toBeLessThanOrEqual(budget);
    expect(chosen.moved).toBeGreaterThan(0);
    const forced: Partial<CompileOptions>[] = [];
    for (let m = 0; m < cfg.layers; m++) {
      forced.push({ checkpoint: "none", moveActivations: m }, { checkpoint: "selective", moveActivations: m });
      for (let r = 1; m + r <= cfg.layers; r++) forced.push({ checkpoint: "blocks", checkpointRegions: r, moveActivations: m });
    }
    const fitting = (f: Partial<CompileOptions>) => {
      try {
        return [plan({ ...opts, ...f, deviceMemory: budget }).checkpoint];
      } catch (e) {
        if (e instanceof DoesNotFitError) return [];
        throw e;
      }
    };
    const alternatives = forced.flatMap(fitting);
    expect(alternatives.some((c) => c.moved === 0)).toBe(true);
    for (const c of alternatives) expect(chosen.predicted.seconds).toBeLessThanOrEqual(c.predicted.seconds * (1 + 1e-9));
  });

  test("auto moves only what the host budget holds", () => {
    const none = plan({}).checkpoint;
    const fast = { checkpoint: "auto" as const, deviceMemory: none.arenaBytes - 1, linkGbps: 1000 };
    const moving = plan(fast);
    expect(moving.checkpoint.moved).toBeGreaterThan(0);
    const capped = plan({ ...fast, hostMemory: moving.hostBytes - 1 });
    expect(capped.hostBytes).toBeLessThanOrEqual(moving.hostBytes - 1);
    expect(capped.checkpoint.arenaBytes).toBeLessThanOrEqual(none.arenaBytes - 1);
  });
});
