// Two runs saving to one checkpoint path at once: the file left is exactly one run's checkpoint,
// bitwise, never a splice of both. The interleaving is forced: run A stops after writing its first
// tensor (STOW_TEST_PAUSE_SAVE, runtime/core/safetensors.cpp), run B saves the whole of its own checkpoint
// meanwhile, then A goes on. With one shared temporary name, A's remaining tensors would land in the
// file B had just renamed into place.
import { TINY_GPT } from "../helpers/stow_commands.ts";
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, test } from "vitest";
import { writeTokenFile } from "../../src/data/token_file.ts";
import { startStow, stow, waitFor } from "../helpers/run.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "stow-concurrent-"));
const tokens = path.join(dir, "tokens.bin");
writeTokenFile(
  tokens,
  Array.from({ length: 4000 }, (_, i) => (i * 7 + (i >> 3)) % 512),
);
const tiny = ["train", ...TINY_GPT, "--batch", "2", "--seq", "32", "--threads", "1", "--steps", "2", "--no-sample", "--data", tokens];

describe("concurrent saves to one path", () => {
  test("leave exactly the checkpoint of the run that renamed last, bitwise", async () => {
    // What each run writes on its own (same folder, so the same relative model path in the metadata).
    for (const seed of ["1", "2"]) {
      const r = stow([...tiny, "--seed", seed, "--save", path.join(dir, `alone-${seed}.safetensors`)]);
      expect(r.status, r.stderr).toBe(0);
    }
    const alone = (seed: string) => readFileSync(path.join(dir, `alone-${seed}.safetensors`));
    expect(alone("1").equals(alone("2"))).toBe(false);

    const shared = path.join(dir, "shared.safetensors");
    const pause = mkdtempSync(path.join(dir, "pause-"));
    const a = startStow([...tiny, "--seed", "1", "--save", shared], { STOW_TEST_PAUSE_SAVE: pause });
    await waitFor(() => readdirSync(pause).some((f) => f.startsWith("paused-")), "run A to pause mid-save");

    const b = stow([...tiny, "--seed", "2", "--save", shared]);
    expect(b.status, b.stderr).toBe(0);
    expect(readFileSync(shared).equals(alone("2"))).toBe(true); // B's save is whole while A is mid-write

    writeFileSync(path.join(pause, "resume"), "");
    const ended = await a.done;
    expect(ended.status, ended.stderr).toBe(0);
    expect(readFileSync(shared).equals(alone("1"))).toBe(true);
    expect(readdirSync(dir).filter((f) => f.includes(".tmp-"))).toEqual([]);
    expect(existsSync(`${shared}.tmp`)).toBe(false);
  });
});
