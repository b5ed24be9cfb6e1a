// What a run leaves behind when it is interrupted, killed, diverges or cannot write: a checkpoint it
// can continue from bitwise, metrics without repeated steps, a good checkpoint never replaced by a
// diverged one, and unwritable destinations found before step 1.
import { TINY_GPT } from "../helpers/stow_commands.ts";
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { readSafetensorsHeader } from "../../src/checkpoint/safetensors.ts";
import { writeTokenFile } from "../../src/data/token_file.ts";
import { mulberry32 } from "../../src/util/random.ts";
import { readMetrics, repoRoot, startStow, stow, waitFor } from "../helpers/run.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "stow-never-lose-"));
const tokens = path.join(dir, "tokens.bin");
writeTokenFile(
  tokens,
  Array.from({ length: 20_000 }, (_, i) => (i * 7 + (i >> 3)) % 512),
);
const STEPS = 600; // enough steps (a millisecond or two each) for a signal to land mid-run
const model = [...TINY_GPT, "--batch", "2", "--seq", "32", "--threads", "1", "--no-sample", "--data", tokens];
const train = (...extra: string[]) => ["train", ...model, "--steps", String(STEPS), ...extra];
const lines = (file: string) => (existsSync(file) ? readFileSync(file, "utf8").split("\n").length - 1 : 0);
const savedStep = (file: string) => Number(readSafetensorsHeader(file).metadata.step);

const mounts: string[] = [];
afterAll(() => {
  for (const m of mounts) execFileSync("umount", [m]);
  rmSync(dir, { recursive: true, force: true });
});

let whole: Record<string, number>[];

describe("never lose training", () => {
  test("an uninterrupted run, the reference", () => {
    const metrics = path.join(dir, "whole.jsonl");
    const r = stow(train("--metrics", metrics));
    expect(r.status, r.stderr).toBe(0);
    whole = readMetrics(metrics);
    expect(whole.map((m) => m.step)).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
  });

  const interrupted = path.join(dir, "sigint.safetensors");
  const interruptedMetrics = path.join(dir, "sigint.jsonl");
  let stoppedAt = 0;

  test("SIGINT finishes the step, saves, and exits 130", async () => {
    const run = startStow(train("--save", interrupted, "--metrics", interruptedMetrics));
    await waitFor(() => lines(interruptedMetrics) >= 20, "20 steps");
    run.child.kill("SIGINT");
    const r = await run.done;
    expect(r.status, r.stderr).toBe(130);
    const m = /stopped by SIGINT after step (\d+); saved .*sigint\.safetensors \(continue with --resume/.exec(r.stderr);
    expect(m, r.stderr).not.toBeNull();
    stoppedAt = Number(m![1]);
    expect(stoppedAt).toBeGreaterThanOrEqual(20);
    expect(stoppedAt).toBeLessThan(STEPS);
    expect(savedStep(interrupted)).toBe(stoppedAt);
    expect(readMetrics(interruptedMetrics).map((x) => x.step)).toEqual(Array.from({ length: stoppedAt }, (_, i) => i + 1));
  });

  test("an update that makes the state non-finite leaves the good checkpoint untouched, exit 3", () => {
    const ckpt = path.join(dir, "good.safetensors");
    copyFileSync(interrupted, ckpt);
    const good = readFileSync(ckpt);
    // One step at the largest float32 learning rate: its loss (computed before the update) is finite, its
    // update is not.
    const r = stow([
      "train",
      ...model,
      "--steps",
      String(stoppedAt + 1),
      "--resume",
      ckpt,
      "--save",
      ckpt,
      "--lr",
      "3.4e38",
      "--lr-schedule",
      "constant",
    ]);
    expect(r.status, r.stderr).toBe(3);
    expect(r.stderr).toMatch(
      new RegExp(
        `not saved: the state after step ${stoppedAt + 1}'s update is not finite ` +
          `\\(tensor '[^']+' holds (NaN|[+-]inf) at element \\d+\\); .*good\\.safetensors stays as it was`,
      ),
    );
    expect(readFileSync(ckpt).equals(good)).toBe(true);
  });

  test("the interrupted run resumes bitwise, the model and config taken from the checkpoint", () => {
    // No model file and no --set: `stow train --resume CKPT` trains what the checkpoint holds.
    const r = stow([
      "train",
      ...model.slice(9),
      "--steps",
      String(STEPS),
      "--resume",
      interrupted,
      "--save",
      interrupted,
      "--metrics",
      interruptedMetrics,
    ]);
    expect(r.status, r.stderr).toBe(0);
    const resumed = readMetrics(interruptedMetrics);
    expect(resumed.map((x) => x.step)).toEqual(whole.map((x) => x.step));
    expect(resumed.map((x) => x.loss)).toEqual(whole.map((x) => x.loss));
  });

  test("--save-every, kill -9 at a random step: the resumed run is bitwise the uninterrupted one, no step twice", async () => {
    const ckpt = path.join(dir, "periodic.safetensors");
    const metrics = path.join(dir, "periodic.jsonl");
    const killAt = 30 + Math.floor(mulberry32(Date.now())() * 200);
    const run = startStow(train("--save", ckpt, "--metrics", metrics, "--save-every", "25", "--keep", "3"));
    await waitFor(() => lines(metrics) >= killAt, `step ${killAt}`);
    run.child.kill("SIGKILL");
    await run.done;
    const killed = lines(metrics);
    const saved = savedStep(ckpt);
    expect(saved % 25, `killed at ${killed}`).toBe(0);
    expect(saved).toBeGreaterThanOrEqual(25);
    expect(saved).toBeLessThanOrEqual(killed);
    // The three newest saves are kept under their step numbers too.
    const copies = readdirSync(dir).filter((f) => /^periodic\.step\d+\.safetensors$/.test(f));
    expect(copies.length).toBe(Math.min(3, saved / 25));
    expect(copies).toContain(`periodic.step${saved}.safetensors`);

    const r = stow(train("--resume", ckpt, "--save", ckpt, "--metrics", metrics, "--save-every", "25", "--keep", "3"));
    expect(r.status, r.stderr).toBe(0);
    const resumed = readMetrics(metrics);
    expect(resumed.map((x) => x.step)).toEqual(whole.map((x) => x.step));
    expect(resumed.map((x) => x.loss)).toEqual(whole.map((x) => x.loss));
    expect(readdirSync(dir).filter((f) => f.includes(".tmp-"))).toEqual([]);
  });

  test("a disk that fills up under the metrics: the last whole step is saved, no half line, exit 2", () => {
    const full = path.join(dir, "full");
    mountTmpfs(full, "size=16k");
    const metrics = path.join(full, "m.jsonl");
    const ckpt = path.join(dir, "disk-full.safetensors");
    const r = stow(train("--metrics", metrics, "--save", ckpt));
    expect(r.status, r.stderr).toBe(2);
    const m =
      /cannot write metrics file .*m\.jsonl at step (\d+): No space left on device\nthe state of step (\d+) was saved to .*disk-full\.safetensors/.exec(
        r.stderr,
      );
    expect(m, r.stderr).not.toBeNull();
    expect(m![2]).toBe(m![1]);
    expect(savedStep(ckpt)).toBe(Number(m![1]));
    // Every line whole: the failed one was taken back.
    expect(readMetrics(metrics).map((x) => x.step)).toEqual(Array.from({ length: Number(m![1]) - 1 }, (_, i) => i + 1));
  });

  test("under --tp 2 the ranks agree: SIGINT saves the same step on all, a non-finite update exits 3", async () => {
    const ckpt = path.join(dir, "tp.safetensors");
    const metrics = path.join(dir, "tp.jsonl");
    const run = startStow(train("--tp", "2", "--save", ckpt, "--metrics", metrics));
    await waitFor(() => lines(metrics) >= 3, "3 steps at --tp 2");
    run.child.kill("SIGINT");
    const r = await run.done;
    expect(r.status, r.stderr).toBe(130);
    const m = /stopped by SIGINT; saved .*tp\.safetensors at step (\d+) \(continue with --resume/.exec(r.stderr);
    expect(m, r.stderr).not.toBeNull();
    expect(savedStep(ckpt)).toBe(Number(m![1]));
    expect(lines(metrics)).toBe(Number(m![1]));

    const good = readFileSync(ckpt);
    const diverged = stow([
      "train",
      ...model,
      "--tp",
      "2",
      "--steps",
      String(Number(m![1]) + 1),
      "--resume",
      ckpt,
      "--save",
      ckpt,
      "--lr",
      "3.4e38",
      "--lr-schedule",
      "constant",
    ]);
    expect(diverged.status, diverged.stderr).toBe(3);
    expect(diverged.stderr).toMatch(/not saved: the state after step \d+'s update is not finite/);
    expect(readFileSync(ckpt).equals(good)).toBe(true);
  });

  test("a read-only or full destination fails before step 1, exit 2", () => {
    const readOnly = path.join(dir, "read-only");
    const tiny = path.join(dir, "tiny");
    mountTmpfs(readOnly, "size=64k,ro");
    mountTmpfs(tiny, "size=64k");
    const cases: [string[], RegExp][] = [
      [
        ["--save", path.join(readOnly, "ckpt.safetensors")],
        /--save .*read-only\/ckpt\.safetensors: cannot write in .*read-only: the file system is read-only/,
      ],
      [
        ["--save", path.join(tiny, "ckpt.safetensors")],
        /--save .*tiny\/ckpt\.safetensors: a checkpoint takes [\d,]+ bytes, but the file system of .*tiny has [\d,]+ bytes free/,
      ],
      [
        ["--save", path.join(dir, "tokens.bin", "ckpt.safetensors")],
        /--save .*tokens\.bin\/ckpt\.safetensors: .*tokens\.bin is a file, not a folder/,
      ],
      [["--save", dir], /--save .*: is a folder; give a file name in it/],
      [["--metrics", path.join(readOnly, "m.jsonl")], /--metrics .*m\.jsonl: cannot write in .*read-only: the file system is read-only/],
    ];
    for (const [flags, message] of cases) {
      const r = stow(train(...flags));
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stdout).not.toMatch(/step 1\//);
    }
    const cache = stow(train(), { STOW_CACHE_DIR: path.join(readOnly, "cache") });
    expect(cache.status, cache.stderr).toBe(2);
    expect(cache.stderr).toMatch(
      /STOW_CACHE_DIR \(the build and data cache\): cannot create the folder .*read-only\/cache: the file system is read-only/,
    );
  });

  test("--resume and stow generate work from another folder", () => {
    const moved = path.join(dir, "elsewhere", "deeper");
    mkdirSync(moved, { recursive: true });
    const ckpt = path.join(moved, "ckpt.safetensors");
    copyFileSync(interrupted, ckpt);
    const elsewhere = path.join(dir, "elsewhere");
    // From a folder that is neither the repository nor the checkpoint's.
    const resumed = stow(
      [
        "train",
        path.join(repoRoot, "samples/gpt2.ts"),
        ...model.slice(1),
        "--steps",
        String(STEPS + 2),
        "--resume",
        "deeper/ckpt.safetensors",
        "--save",
        "deeper/ckpt.safetensors",
      ],
      {},
      elsewhere,
    );
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(savedStep(ckpt)).toBe(STEPS + 2);
    const generated = stow(["generate", "deeper/ckpt.safetensors", "--prompt", "x", "--tokens", "3", "--threads", "1"], {}, elsewhere);
    expect(generated.status, generated.stderr).toBe(0);
    expect(generated.stdout.startsWith("x")).toBe(true);
    expect(generated.stderr).not.toMatch(/changed since/);

    // A model file edited since the save is reported as such (here the saved hash is made another one's).
    const bytes = readFileSync(ckpt);
    const sha = /"sha256\\":\\"([0-9a-f]{64})/.exec(bytes.subarray(0, 4096).toString("latin1"))![1];
    const edited = path.join(moved, "edited.safetensors");
    writeFileSync(edited, Buffer.from(bytes.toString("latin1").replace(sha, "0".repeat(64)), "latin1"));
    const warned = stow(["generate", "deeper/edited.safetensors", "--prompt", "x", "--tokens", "1", "--threads", "1"], {}, elsewhere);
    expect(warned.status, warned.stderr).toBe(0);
    expect(warned.stderr).toMatch(
      /warning: .*samples\/gpt2\.ts changed since deeper\/edited\.safetensors was saved \(sha256 000000000000… then, [0-9a-f]{12}… now\)/,
    );
  });
});

/** A small tmpfs the test owns (tests run as root: permissions would not stop a write, a mount does). */
function mountTmpfs(at: string, options: string): void {
  mkdirSync(at, { recursive: true });
  execFileSync("mount", ["-t", "tmpfs", "-o", options, "tmpfs", at]);
  mounts.push(at);
}
