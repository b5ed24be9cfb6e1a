// stow capacity end to end: the reported model fits and the next larger one does not (each checked with
// `stow plan` under the same budgets), for a family grown by a scale rule and for one made of presets;
// the cpu target measures this machine (and a disk folder) and predicts a finite, positive step time; bad targets, profile
// files and flags exit 2. Whether the cpu prediction is close to measured steps is a timing claim on a
// shared machine, so it lives in the bench (`npm run bench -- capacity-targets`), not here.
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, test } from "vitest";
import { parseTarget, targetJson } from "../../src/targets/json_target.ts";
import { GPU_TARGETS } from "../../src/targets/gpus.ts";
import { expectUserError } from "../helpers/expect_error.ts";
import { stow } from "../helpers/run.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "stow-capacity-"));
const profile = (name: string, body: string) => {
  const file = path.join(dir, name);
  writeFileSync(file, body);
  return file;
};
const card = {
  description: "a test card",
  device_memory: "64MiB",
  matmul_flops: 1e12,
  memory_bandwidth: 100e9,
  link_bandwidth: 10e9,
  host_bandwidth: 20e9,
};
const cardFile = profile("card.json", JSON.stringify(card));

const tinyGpt = ["--preset", "mini", "--set", "vocab=256", "--set", "dim=64", "--set", "heads=2", "--set", "seq=32"];
const step = ["--batch", "2", "--threads", "2"];
const budgets = ["--device-memory", "1MiB", "--host-memory", "4MiB"];

function capacityJson(args: string[], env: Record<string, string> = {}) {
  const r = stow(["capacity", ...args, "--json"], env);
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

/** The tiny GPT's capacity on the test card, one rank: two tests read it, so it runs once. */
let oneRankResult: ReturnType<typeof capacityJson> | undefined;
const oneRank = () => (oneRankResult ??= capacityJson(["samples/gpt2.ts", ...tinyGpt, ...step, ...budgets, "--target", cardFile]));

function plans(args: string[]): { status: number | null; stderr: string } {
  return stow(["plan", ...args, "--checkpoint", "auto"]);
}

describe("stow capacity", () => {
  test("grows the scale rule's field: the reported layers fit, one more does not", () => {
    const c = oneRank();
    const layers = c.largest.config.layers;
    expect(c.family.field).toBe("layers");
    expect(c.largest.config).toMatchObject({ vocab: 256, dim: 64, heads: 2, seq: 32 });
    expect(layers).toBeGreaterThanOrEqual(1);
    // The target too: which schedule the planner keeps, and so what the host holds, is the cost model's choice.
    const onCard = [...step, ...budgets, "--target", cardFile];
    const fits = plans(["samples/gpt2.ts", ...tinyGpt, "--set", `layers=${layers}`, ...onCard]);
    expect(fits.status, fits.stderr).toBe(0);
    const next = plans(["samples/gpt2.ts", ...tinyGpt, "--set", `layers=${layers + 1}`, ...onCard]);
    expect(next.status).toBe(2);
    expect(next.stderr).toMatch(/does not fit/);
    expect(c.next.label).toBe(`layers=${layers + 1}`);
    // The plan it reports is that model's: 16 bytes a parameter at most in host memory, and the predicted step
    // is the cost model on the profile's numbers.
    expect(c.plan.host_bytes).toBeLessThanOrEqual(4 * 2 ** 20);
    expect(c.target.machine.matmulFlops).toBe(1e12);
    expect(c.predicted.step_seconds).toBeGreaterThan(0);
    expect(c.predicted.tokens_per_s).toBeCloseTo(64 / c.predicted.step_seconds, 6);
    // Every member it planned is listed, and the search made few plans.
    expect(c.search.probes.filter((p: { fits: boolean }) => p.fits).every((p: { member: number }) => p.member <= layers)).toBe(true);
    expect(c.search.plans).toBeLessThanOrEqual(8);
  });

  test("--disk-memory counts the disk tier: the answer holds more model data than device and host, and plans agree", () => {
    // The target too: which chunks stay on the device, and so what the host holds, is the cost model's choice.
    const withDisk = [...budgets, "--disk-memory", "16MiB", "--target", cardFile];
    const c = capacityJson(["samples/gpt2.ts", ...tinyGpt, ...step, ...withDisk]);
    const layers = c.largest.config.layers;
    // Its AdamW moments are on disk, and its model data at 16 bytes a parameter exceeds device plus host memory.
    expect(c.plan.disk_bytes).toBeGreaterThan(0);
    expect(16 * c.largest.param_count).toBeGreaterThan(2 ** 20 + 4 * 2 ** 20);
    expect(c.disk_memory_bytes).toBe(16 * 2 ** 20);
    const fits = plans(["samples/gpt2.ts", ...tinyGpt, "--set", `layers=${layers}`, ...step, ...withDisk]);
    expect(fits.status, fits.stderr).toBe(0);
    const next = plans(["samples/gpt2.ts", ...tinyGpt, "--set", `layers=${layers + 1}`, ...step, ...withDisk]);
    expect(next.status).toBe(2);
  });

  test("when activations bind it takes more micro-batches (--grad-accum), and its train command plans the answer", () => {
    // A narrow, long-sequence GPT: activations outweigh model data, and the host is too small to take them.
    const narrow = ["--preset", "mini", "--set", "vocab=256", "--set", "dim=32", "--set", "heads=2", "--set", "seq=128"];
    const tight = ["--batch", "4", "--threads", "2", "--device-memory", "2MiB", "--host-memory", "256KiB", "--target", cardFile];
    const c = capacityJson(["samples/gpt2.ts", ...narrow, ...tight]);
    expect(c.plan.grad_accum).toBeGreaterThan(1);
    expect(c.plan.micro_batch * c.plan.grad_accum).toBe(4);
    // One micro-batch of 4 holds a smaller member: accumulation is what made the answer larger.
    const single = c.choices.find((ch: { grad_accum: number }) => ch.grad_accum === 1);
    expect(single.largest.param_count).toBeLessThan(c.largest.param_count);
    // The printed train command, given to `stow plan`, plans exactly the answered model at its budgets.
    expect(c.train_command.slice(0, 2)).toEqual(["stow", "train"]);
    const r = stow(["plan", ...c.train_command.slice(2), "--json"]);
    expect(r.status, r.stderr).toBe(0);
    const plan = JSON.parse(r.stdout);
    expect(plan.config).toEqual(c.largest.config);
    expect(plan.param_count).toBe(c.largest.param_count);
    expect(plan.decisions.grad_accum).toBe(c.plan.grad_accum);
    expect(plan.arena_bytes).toBe(c.plan.arena_bytes);
    // And one more layer at the same micro-batches does not fit.
    const layers = c.largest.config.layers;
    const next = plans(["samples/gpt2.ts", ...narrow, "--set", `layers=${layers + 1}`, ...tight, "--grad-accum", `${c.plan.grad_accum}`]);
    expect(next.status).toBe(2);
  });

  test("without a scale rule the family is the presets by size", () => {
    // 4 MiB of host memory holds the 4-layer preset's model data, not the 6-layer one's.
    const c = capacityJson(["test/fixtures/models/gpt_presets.ts", ...step, ...budgets, "--target", cardFile]);
    expect(c.family.field).toBeNull();
    expect(c.largest.label).toBe("preset four");
    expect(c.next.label).toBe("preset six");
    const model = "test/fixtures/models/gpt_presets.ts";
    expect(plans([model, "--preset", "four", ...step, ...budgets]).status).toBe(0);
    expect(plans([model, "--preset", "six", ...step, ...budgets]).status).toBe(2);
  });

  test("--ranks 2: two devices at ZeRO 3 sharing the host hold a larger member than one with half the host", () => {
    const one = oneRank();
    const shared = ["--device-memory", "1MiB", "--host-memory", "8MiB"];
    const c = capacityJson(["samples/gpt2.ts", ...tinyGpt, ...step, ...shared, "--ranks", "2", "--target", cardFile]);
    expect(c.ranks).toEqual({ dp: 2, tp: 1, zero: 3, host_memory_bytes_per_rank: 4 * 2 ** 20 });
    const layers = c.largest.config.layers;
    expect(layers).toBeGreaterThan(one.largest.config.layers);
    // The answer is the planner's, at each rank's budgets: that member fits and the next does not.
    const perRank = [...step, "--dp", "2", "--zero", "3", "--device-memory", "1MiB", "--host-memory", "4MiB"];
    const fits = plans(["samples/gpt2.ts", ...tinyGpt, "--set", `layers=${layers}`, ...perRank]);
    expect(fits.status, fits.stderr).toBe(0);
    expect(plans(["samples/gpt2.ts", ...tinyGpt, "--set", `layers=${layers + 1}`, ...perRank]).status).toBe(2);
    expect(c.next.reason).toMatch(/a rank's share of --host-memory/);
    // Its plan's host bytes are one rank's, within its share; tokens count the global batch.
    expect(c.plan.host_bytes).toBeLessThanOrEqual(4 * 2 ** 20);
    expect(c.predicted.tokens_per_s).toBeCloseTo(64 / c.predicted.step_seconds, 6);
  });

  test("the cpu target measures this machine and predicts a finite, positive step", () => {
    // A fresh cache directory: the probe builds and runs here rather than reading a cached measurement.
    // --disk-path: the probe measures that folder's disk too, and leaves no file there.
    const disk = mkdtempSync(path.join(dir, "disk-"));
    const c = capacityJson(["samples/gpt2.ts", ...tinyGpt, ...step, ...budgets, "--target", "cpu", "--disk-path", disk], {
      STOW_CACHE_DIR: path.join(dir, "cache"),
    });
    expect(c.target.name).toBe("cpu");
    expect(readdirSync(disk)).toEqual([]);
    const m = c.target.machine;
    const rates = [
      m.matmulFlops,
      m.memoryBandwidth,
      m.linkBandwidth,
      m.hostBandwidth,
      m.diskReadBandwidth,
      m.diskWriteBandwidth,
      m.softmaxRate,
      ...Object.values(m.elementRates),
      ...[...m.productRates, ...m.streamRates].flatMap((p: { size: number; rate: number }) => [p.size, p.rate]),
      ...m.attentionRates.forward.flat(),
      ...m.attentionRates.backward.flat(),
    ];
    for (const v of rates) {
      expect(Number.isFinite(v)).toBe(true);
      expect(v).toBeGreaterThan(0);
    }
    // A grid of T by D for each pass, and sizes in ascending order, as the model interpolates them.
    expect(m.attentionRates.forward).toHaveLength(m.attentionRates.T.length);
    expect(m.attentionRates.backward.every((row: number[]) => row.length === m.attentionRates.D.length)).toBe(true);
    for (const rates of [m.productRates, m.streamRates]) {
      const sizes = rates.map((p: { size: number }) => p.size);
      expect(sizes).toEqual([...sizes].sort((a, b) => a - b));
    }
    // Its JSON form is a profile that reads back as the same machine.
    expect(parseTarget("cpu.json", targetJson({ name: "cpu", description: "cpu", deviceMemory: 1, machine: m })).machine).toEqual(m);
    expect(Number.isFinite(c.predicted.step_seconds)).toBe(true);
    expect(c.predicted.step_seconds).toBeGreaterThan(0);
    expect(m.network).toBeUndefined(); // one rank: no link to measure

    // Two ranks: the MPI link between them is measured too (the machine's own probe is cached by now),
    // and the plan's collectives are costed over it; each rank gets half the cores.
    const plan = (ranks: string[]) => {
      const r = stow(["plan", "samples/gpt2.ts", ...tinyGpt, "--batch", "2", ...ranks, "--target", "cpu", "--json"], {
        STOW_CACHE_DIR: path.join(dir, "cache"),
      });
      expect(r.status, r.stderr).toBe(0);
      return JSON.parse(r.stdout);
    };
    const dp2 = plan(["--dp", "2"]);
    expect(dp2.decisions.threads).toBe(1);
    expect(dp2.predicted_step.network_seconds).toBeGreaterThan(0);
    expect(dp2.predicted_step.network_seconds).toBeLessThan(dp2.predicted_step.seconds);
    const [link] = readdirSync(path.join(dir, "cache", "targets")).filter((f) => /^mpi-.*\.json$/.test(f));
    const probe = JSON.parse(readFileSync(path.join(dir, "cache", "targets", link), "utf8"));
    expect(probe.ranks).toBe(2);
    expect(probe.points.map((p: number[]) => p[0])).toEqual([16, 16 * 2 ** 20]);
    for (const [, seconds] of probe.points) expect(seconds).toBeGreaterThan(0);
    expect(plan([]).predicted_step.network_seconds).toBe(0);
  });

  test("bad targets, profiles and flags exit 2 with one message", () => {
    const expect2 = (args: string[], pattern: RegExp) => {
      const r = stow(["capacity", "samples/gpt2.ts", ...tinyGpt, ...step, ...args]);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toMatch(pattern);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    };
    expect2(["--target", "rtx9090", "--host-memory", "1GiB"], /--target: unknown target "rtx9090"; the targets are cpu, rtx2060-6g/);
    expect2(["--target", profile("broken.json", '{ "device_memory": '), "--host-memory", "1GiB"], /broken\.json: not valid JSON/);
    expect2(["--target", path.join(dir, "absent.json"), "--host-memory", "1GiB"], /absent\.json: cannot read the profile \(ENOENT\)/);
    expect2(["--target", cardFile], /--host-memory is required/);
    expect2(["--target", "cpu", "--host-memory", "1GiB", "--disk-path", cardFile], /--disk-path .*card\.json: not a folder/);
    expect2(["--target", cardFile, "--host-memory", "8MiB", "--ranks", "2", "--dp", "2"], /--ranks 2 plans --dp 2 --zero 3 itself/);
    expect2(
      ["--target", cardFile, "--host-memory", "8MiB", "--ranks", "4"],
      /--batch 2 is the global batch; it must split evenly over --ranks 4/,
    );
    expect2(["--target", cardFile, "--host-memory", "1GiB", "--set", "layers=3"], /--set layers: capacity chooses layers itself/);
    expect2(
      ["--target", cardFile, "--device-memory", "16KiB", "--host-memory", "4MiB"],
      /not even the smallest member of the family \(layers=1\) fits: the step does not fit/,
    );
  });
});

describe("target profiles", () => {
  test("a JSON profile is checked field by field", () => {
    expect(parseTarget("t.json", card)).toMatchObject({ deviceMemory: 64 * 2 ** 20, machine: { matmulFlops: 1e12, linkBandwidth: 10e9 } });
    expect(parseTarget("t.json", { ...card, device_memory: 1024 }).deviceMemory).toBe(1024);
    const { link_bandwidth: _, ...noLink } = card;
    expectUserError(() => parseTarget("t.json", noLink), /t\.json: missing field "link_bandwidth"/);
    expectUserError(() => parseTarget("t.json", { ...card, matmul_flops: -1 }), /"matmul_flops" must be a positive number/);
    expectUserError(() => parseTarget("t.json", { ...card, matmul_flops: "fast" }), /"matmul_flops" must be a positive number/);
    expectUserError(() => parseTarget("t.json", { ...card, device_memory: "lots" }), /"device_memory": expected a size/);
    expectUserError(() => parseTarget("t.json", { ...card, pcie: 4 }), /unknown field "pcie"/);
    expectUserError(() => parseTarget("t.json", [card]), /expected a JSON object/);
    // The link between ranks, optional: both fields, positive, and nothing else.
    const network = { bandwidth: 100e9, latency: 5e-6 };
    expect(parseTarget("t.json", { ...card, network }).machine.network).toEqual(network);
    expectUserError(
      () => parseTarget("t.json", { ...card, network: { bandwidth: 1e9 } }),
      /"network"\.latency must be a positive number \(seconds\)/,
    );
    expectUserError(
      () => parseTarget("t.json", { ...card, network: { ...network, hops: 2 } }),
      /"network" must be an object with "bandwidth"/,
    );
    // Each GPU profile reads back from its JSON form, its link included.
    for (const [name, t] of Object.entries(GPU_TARGETS))
      expect(parseTarget(`${name}.json`, targetJson({ name, ...t })).machine).toEqual(t.machine);
  });

  test("a JSON profile may carry measured rates; without them it is a machine of four rates", () => {
    // A profile written before the measured rates existed still loads, with no tables.
    expect(Object.keys(parseTarget("t.json", card).machine).sort()).toEqual([
      "hostBandwidth",
      "linkBandwidth",
      "matmulFlops",
      "memoryBandwidth",
    ]);
    const attention = {
      T: [64, 256],
      D: [32, 64],
      forward: [
        [1e9, 2e9],
        [3e9, 4e9],
      ],
      backward: [
        [1e9, 2e9],
        [3e9, 4e9],
      ],
    };
    const measured = {
      ...card,
      product_rates: [
        [1e6, 1e10],
        [1e9, 1e11],
      ],
      stream_rates: [[1e6, 4e11]],
      attention_rates: attention,
      softmax_rate: 1e9,
      element_rates: { gelu: 1e9 },
      disk_read_bandwidth: 3e9,
      disk_write_bandwidth: 2e9,
    };
    const t = parseTarget("t.json", measured);
    expect(t.machine).toMatchObject({
      productRates: [
        { size: 1e6, rate: 1e10 },
        { size: 1e9, rate: 1e11 },
      ],
      streamRates: [{ size: 1e6, rate: 4e11 }],
      attentionRates: attention,
      softmaxRate: 1e9,
      elementRates: { gelu: 1e9 },
      diskReadBandwidth: 3e9,
      diskWriteBandwidth: 2e9,
    });
    expect(parseTarget("t.json", targetJson(t))).toEqual({ ...t, name: "t.json" });
    expectUserError(
      () =>
        parseTarget("t.json", {
          ...card,
          product_rates: [
            [1e9, 1e11],
            [1e6, 1e10],
          ],
        }),
      /"product_rates" must be in ascending order of size/,
    );
    expectUserError(
      () => parseTarget("t.json", { ...card, product_rates: [1e6] }),
      /"product_rates" must be a non-empty list of \[flops of one call, FLOP\/s\] pairs/,
    );
    expectUserError(
      () => parseTarget("t.json", { ...card, stream_rates: [[1e6, -1]] }),
      /"stream_rates"\[0\]\[1\] must be a positive number/,
    );
    expectUserError(
      () => parseTarget("t.json", { ...card, attention_rates: { ...attention, forward: [[1e9]] } }),
      /"attention_rates"\.forward must be 2 rows \(one per T\) of 2 rates/,
    );
    expectUserError(
      () => parseTarget("t.json", { ...card, attention_rates: { ...attention, T: [256, 64] } }),
      /"attention_rates"\.T must be a non-empty ascending list/,
    );
    expectUserError(() => parseTarget("t.json", { ...card, softmax_rate: 0 }), /"softmax_rate" must be a positive number/);
    expectUserError(
      () => parseTarget("t.json", { ...card, disk_write_bandwidth: "fast" }),
      /"disk_write_bandwidth" must be a positive number/,
    );
    expectUserError(() => parseTarget("t.json", { ...card, element_rates: { gleu: 1e9 } }), /"element_rates": unknown op "gleu"/);
  });

  test("named profiles are sustained rates below each card's and each NVMe drive's datasheet peak", () => {
    // Datasheet peaks (dense fp32 or TF32 FLOP/s, DRAM bytes/s, PCIe x16 bytes/s per direction, GiB of memory,
    // and the sequential read and write bytes/s of the profile's NVMe drive, gen3 x4 at most 3.94 GB/s, gen4 x4 7.88).
    const gen3Drive = { diskRead: 3.4e9, diskWrite: 2.3e9 }; // Samsung 970 EVO 500 GB
    const gen4Drive = { diskRead: 7.0e9, diskWrite: 5.0e9 }; // Samsung 980 PRO 1 TB
    const dataCentreDrive = { diskRead: 7.0e9, diskWrite: 4.3e9 }; // Intel D7-P5500 3.84 TB
    const peaks: Record<string, { flops: number; dram: number; pcie: number; gib: number; diskRead: number; diskWrite: number }> = {
      "rtx2060-6g": { flops: 6.45e12, dram: 336e9, pcie: 15.75e9, gib: 6, ...gen3Drive },
      "rtx3090-24g": { flops: 35.6e12, dram: 936e9, pcie: 31.5e9, gib: 24, ...gen4Drive },
      "rtx4090-24g": { flops: 82.6e12, dram: 1008e9, pcie: 31.5e9, gib: 24, ...gen4Drive },
      "a100-80g": { flops: 156e12, dram: 2039e9, pcie: 31.5e9, gib: 80, ...dataCentreDrive },
      "h100-80g": { flops: 495e12, dram: 3350e9, pcie: 63e9, gib: 80, ...dataCentreDrive },
    };
    expect(Object.keys(GPU_TARGETS).sort()).toEqual(Object.keys(peaks).sort());
    for (const [name, t] of Object.entries(GPU_TARGETS)) {
      const p = peaks[name];
      expect(t.machine.matmulFlops).toBeLessThan(p.flops);
      expect(t.machine.memoryBandwidth).toBeLessThan(p.dram);
      expect(t.machine.linkBandwidth).toBeLessThan(p.pcie);
      expect(t.deviceMemory).toBeLessThan(p.gib * 2 ** 30);
      expect(t.deviceMemory).toBeGreaterThan(0.9 * p.gib * 2 ** 30);
      expect(t.machine.diskReadBandwidth).toBeLessThan(p.diskRead);
      expect(t.machine.diskWriteBandwidth).toBeLessThan(p.diskWrite);
    }
  });
});
