// The disk tier: with --host-memory too small for the offloaded model data, the AdamW moments of
// offloaded chunks, then the host copies of their gradients, then their parameters live in a scratch
// file in --disk-path. The host cap here sends every offloaded chunk's moments and gradients there and
// the parameters of some chunks, so host AdamW runs with the parameter in host memory and on disk,
// chunks reach the device from host memory and from disk, and the gradient norm reads gradients back. The run must compute bitwise what the run with everything in host memory computes, move exactly the disk bytes the plan predicts, stay within the host
// cap, leave nothing in the folder, save and resume through the tier bitwise, and survive a kill -9: the
// tier is scratch, so the last checkpoint resumes bitwise.
import { existsSync, mkdtempSync, readFileSync, readdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, test } from "vitest";
import { builtinCorpusText } from "../../src/data/corpus.ts";
import { encodeText } from "../../src/data/tokenize.ts";
import { writeTokenFile } from "../../src/data/token_file.ts";
import { stowPlanJson, stowTrain } from "../helpers/stow_commands.ts";
import { readMetrics, startStow, stow, waitFor } from "../helpers/run.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "stow-disk-"));
const data = path.join(dir, "corpus.bin");
const tier = mkdtempSync(path.join(dir, "tier-"));
const model = ["samples/gpt2.ts", "--preset", "bytes", "--batch", "2", "--seq", "32", "--threads", "2", "--checkpoint", "none"];

// The resident plan, and the plan offloading model data under a device budget of 66% of its arena: every
// test sets its caps from these two (planned once).
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- plans' JSON, read field by field
let resident: any, offloaded: any;
const device = () => ["--device-memory", String(Math.floor(resident.arena_bytes * 0.66))];
// A host cap below what the offloaded model data needs even with every moment and gradient on disk, and a disk tier.
const hostCap = () => Math.floor(offloaded.host_bytes * 0.3);
const caps = (disk = "1GiB") => [...device(), "--host-memory", String(hostCap()), "--disk-memory", disk, "--disk-path", tier];

beforeAll(() => {
  resident = stowPlanJson(model);
  offloaded = stowPlanJson([...model, ...device()]);
  // GPT-2 tokens folded into the bytes preset's vocabulary of 256; few, as the host cap counts the data
  // buffers too and the planner leaves them little room (a step reads 64; the data starts over when read).
  writeTokenFile(
    data,
    Array.from(encodeText(builtinCorpusText()).slice(0, 1_500), (t) => t % 256),
  );
});

describe("the disk tier", () => {
  test("moments, gradients and parameters on disk: bitwise the losses with them in host memory, the planned disk bytes, within the host cap", () => {
    expect(offloaded.offload.model_data_on_host).toBe(true);
    expect(offloaded.disk.bytes).toBe(0);
    const withDisk = caps();
    const planned = stowPlanJson([...model, ...withDisk]);
    expect(planned.disk.bytes).toBeGreaterThan(0);
    expect(planned.disk.params_on_disk).toBeGreaterThan(0);
    expect(planned.disk.grads_on_disk).toBe(planned.disk.moments_on_disk / 2);
    // Some chunks keep their parameters in host memory, the rest of their model data on disk.
    expect(planned.disk.moments_on_disk / 2).toBeGreaterThan(planned.disk.params_on_disk);
    expect(planned.disk.staging_bytes).toBeGreaterThan(0);
    // Each step reads the parameters on disk more than once (each phase's copy, then AdamW): more read than written.
    expect(planned.disk.read_bytes_per_step).toBeGreaterThan(planned.disk.write_bytes_per_step);
    expect(planned.host_bytes).toBeLessThanOrEqual(hostCap());
    // Without a disk tier the same caps do not fit.
    const refused = stow(["plan", ...model, ...device(), "--host-memory", String(hostCap())]);
    expect(refused.status).toBe(2);

    // STOW_TEST_THREADS: each step's metrics count the process's threads.
    const train = (args: string[], name: string) =>
      stowTrain([...model, ...args, "--data", data], path.join(dir, name), { STOW_TEST_THREADS: "1" });
    const inHost = train([...device(), "--steps", "10"], "host.jsonl");
    // Without the profiled warm-up's re-plan, whose measured times may choose another offload schedule
    // (other chunk loads, so other disk reads): the plan that runs is the plan above.
    const onDisk = train([...withDisk, "--steps", "10", "--profile-steps", "0"], "disk.jsonl");
    // The disk tier's threads start only with a disk tier: the link's read and write pools (4 requests in
    // flight, the caller counted: 3 threads each), and the pipeline's reader and writer with a pool each
    // (1 + 3 each): 14 more threads than the same plan without a disk tier starts.
    expect(inHost[0].threads).toBeGreaterThan(0);
    expect(onDisk.map((m) => m.threads - inHost[0].threads)).toEqual(onDisk.map(() => 14));
    expect(onDisk.map((m) => m.loss)).toEqual(inHost.map((m) => m.loss));
    expect(onDisk.map((m) => m.grad_norm)).toEqual(inHost.map((m) => m.grad_norm));
    for (const m of onDisk) {
      expect(m.disk_read_bytes).toBe(planned.disk.read_bytes_per_step);
      expect(m.disk_write_bytes).toBe(planned.disk.write_bytes_per_step);
      expect(m.host_peak_bytes).toBeLessThanOrEqual(hostCap());
    }
    expect(inHost.every((m) => m.disk_read_bytes === undefined)).toBe(true);
    // The tier's file is scratch: gone with the run.
    expect(readdirSync(tier)).toEqual([]);

    // A checkpoint holds the model data read back from disk; a run resumed from it loads it into the tier.
    const ckpt = path.join(dir, "ckpt.safetensors");
    train([...withDisk, "--steps", "10", "--stop-after", "5", "--save", ckpt], "first.jsonl");
    const rest = train([...withDisk, "--steps", "10", "--resume", ckpt], "rest.jsonl");
    expect(rest.map((m) => m.loss)).toEqual(inHost.slice(5).map((m) => m.loss));
  });

  test("kill -9 mid-run with --save-every: resumed from the last checkpoint, bitwise the uninterrupted run", async () => {
    const withDisk = caps();
    const steps = ["--steps", "160", "--no-sample", "--data", data];
    const whole = stowTrain([...model, ...withDisk, "--steps", "160", "--data", data], path.join(dir, "whole.jsonl"));
    const ckpt = path.join(dir, "killed.safetensors");
    const metrics = path.join(dir, "killed.jsonl");
    const lines = () => (existsSync(metrics) ? readFileSync(metrics, "utf8").split("\n").length - 1 : 0);
    const run = startStow(["train", ...model, ...withDisk, ...steps, "--save", ckpt, "--save-every", "10", "--metrics", metrics]);
    const killAt = 30 + Math.floor(Math.random() * 80);
    await waitFor(() => lines() >= killAt, `step ${killAt}, past the first saves`);
    run.child.kill("SIGKILL");
    expect((await run.done).signal).toBe("SIGKILL"); // killed mid-run, not after its last step
    expect(readdirSync(tier)).toEqual([]);
    const r = stow(["train", ...model, ...withDisk, ...steps, "--resume", ckpt, "--save", ckpt, "--metrics", metrics]);
    expect(r.status, r.stderr).toBe(0);
    expect(readMetrics(metrics).map((m) => m.loss)).toEqual(whole.map((m) => m.loss));
  });

  test("--disk-memory without --disk-path, too small for the moments moved there, or with --tp: exit 2 naming the flags", () => {
    const r = stow(["train", ...model, "--disk-memory", "1GiB", "--steps", "1", "--no-sample", "--data", data]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--disk-memory: give --disk-path DIR too/);
    const p = stow(["plan", ...model, ...caps("4KiB")]);
    expect(p.status).toBe(2);
    expect(p.stderr).toMatch(/the model data moved to disk needs .* more than --disk-memory 4\.0 KiB/);
    expect(p.stderr).not.toMatch(/\n\s+at /);
    const tp = stow(["plan", ...model, "--tp", "2", "--disk-memory", "1GiB"]);
    expect(tp.status).toBe(2);
    expect(tp.stderr).toMatch(/--disk-memory is not combined with --tp or --dp yet/);
  });
});
