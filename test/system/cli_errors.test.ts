// Bad input through the real CLI: each case gives one clear message naming the problem and where,
// exit code 2, and no stack trace.
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, test } from "vitest";
import { writeSafetensors } from "../../src/checkpoint/safetensors.ts";
import { writeTokenFile } from "../../src/data/token_file.ts";
import { stow } from "../helpers/run.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "stow-errors-"));
const tokens = path.join(dir, "tokens.bin");
const tiny = ["--set", "layers=1", "--batch", "2", "--seq", "16", "--threads", "2", "--steps", "1", "--no-sample"];

beforeAll(() =>
  writeTokenFile(
    tokens,
    Array.from({ length: 200 }, (_, i) => (i * 7) % 500),
  ),
);

function expectUserError(args: string[], ...patterns: RegExp[]) {
  const r = stow(args);
  expect(r.status, r.stderr).toBe(2);
  expect(r.stderr).toMatch(/^stow: /);
  expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  expect(r.stderr).not.toMatch(/internal error/);
  for (const p of patterns) expect(r.stderr).toMatch(p);
}

describe("bad input", () => {
  test("a model file with a type error", () => {
    expectUserError(["plan", "test/fixtures/models/type_error.ts"], /test\/fixtures\/models\/type_error\.ts:\d+:\d+: error TS2322/, /\^/);
  });

  test("a model with a shape mismatch names the model line", () => {
    expectUserError(
      ["plan", "test/fixtures/models/shape_error.ts"],
      /shape_error\.ts:10:22: shape error: Linear\(64 -> 10\)/,
      /return this\.head\.forward\(x\)/,
    );
  });

  test("a shape bug inside a helper library points at the model's own line, naming the helper's", () => {
    expectUserError(
      ["plan", "test/fixtures/models/helper_shape_error.ts"],
      /^stow: test\/fixtures\/models\/helper_shape_error\.ts:12:58: shape error: Linear\(16 -> 16\) got an input of shape \[8,4,8\]/,
      /\(in the helper at test\/fixtures\/models\/helpers\/layers\.ts:12:20\)\n/,
      /\n {2}12 \| {5}return this\.head\.forward\(checkpoint\(\(\) => this\.outer\.forward\(x\)\)\);/,
    );
  });

  test("a module the forward never calls is the user's error at the line that made its parameter", () => {
    expectUserError(
      ["plan", "test/fixtures/models/unused_module.ts"],
      /^stow: test\/fixtures\/models\/unused_module\.ts:7:21: parameter unused\.weight does not affect the loss/,
      /\n {2}7 \| {3}readonly unused = new Linear\(16, 16\);/,
    );
  });

  test("an exception in the model's own code is the user's: file:line:col, a code frame, exit 2", () => {
    expectUserError(
      ["plan", "test/fixtures/models/throws_in_forward.ts"],
      /^stow: test\/fixtures\/models\/throws_in_forward\.ts:8:37: forward is not written yet\n/,
      /\n {2}8 \| .*throw new Error/,
    );
    expectUserError(
      ["plan", "test/fixtures/models/throws_in_constructor.ts"],
      /throws_in_constructor\.ts:8:28: TypeError: helpers\.width is not a function/,
      /readonly width = helpers\.width\(\);/,
    );
    expectUserError(
      ["plan", "test/fixtures/models/throws_in_build.ts"],
      /throws_in_build\.ts:15:35: RangeError: vocab 10 is too small for this model/,
    );
    expectUserError(
      ["plan", "test/fixtures/models/returns_non_tensor.ts"],
      /returns_non_tensor\.ts:7:24: forward must return a Tensor \(the logits\), but it returned an array of 1/,
    );
  });

  test("a missing model file", () => {
    expectUserError(["plan", "samples/nope.ts"], /model file not found: samples\/nope\.ts/);
  });

  test("an unknown preset or config key", () => {
    expectUserError(["plan", "samples/gpt2.ts", "--preset", "mini", "--preset", "huge"], /--preset: unknown preset "huge"/, /mini, 124M/);
    expectUserError(["plan", "samples/gpt2.ts", "--preset", "mini", "--set", "depth=3"], /--set: unknown config field/, /layers/);
    expectUserError(["plan", "samples/gpt2.ts", "--preset", "mini", "--set", "heads=3"], /dim \(128\) must be divisible by heads \(3\)/);
  });

  test("nonsense flag values name the flag", () => {
    expectUserError(["train", "samples/gpt2.ts", "--preset", "mini", "--steps", "abc"], /--steps/);
    expectUserError(["train", "samples/gpt2.ts", "--preset", "mini", "--lr", "-1"], /--lr/);
    expectUserError(
      ["train", "samples/gpt2.ts", "--preset", "mini", "--lr", "1e300"],
      /--lr: must be at most 3\.4028234663852886e\+38, got 1e\+300/,
    );
    expectUserError(
      ["train", "samples/gpt2.ts", "--preset", "mini", "--lr", "1e-3", "--min-lr", "1e-2"],
      /--min-lr: 0\.01 is above --lr 0\.001/,
    );
    expectUserError(
      ["train", "samples/gpt2.ts", "--preset", "mini", "--save-every", "10", "--no-sample"],
      /--save-every: give --save FILE/,
    );
    expectUserError(["train", "samples/gpt2.ts", "--preset", "mini", "--keep", "0"], /--keep: must be at least 1/);
    expectUserError(["plan", "samples/gpt2.ts", "--preset", "mini", "--batch", "0"], /--batch/);
    expectUserError(["train", "samples/gpt2.ts", "--preset", "mini", "--lr-schedule", "linear"], /--lr-schedule/);
    expectUserError(["plan", "samples/gpt2.ts", "--preset", "mini", "--seq", "4096"], /--seq 4096 is longer than the model's context/);
  });

  test("memory budgets that are unparsable, zero or too small", () => {
    expectUserError(
      ["plan", "samples/gpt2.ts", "--preset", "mini", "--device-memory", "0"],
      /--device-memory: size must be greater than zero/,
    );
    expectUserError(["plan", "samples/gpt2.ts", "--preset", "mini", "--device-memory", "-3GiB"], /--device-memory/);
    expectUserError(["plan", "samples/gpt2.ts", "--preset", "mini", "--host-memory", "lots"], /--host-memory/);
    expectUserError(
      ["plan", "samples/gpt2.ts", "--preset", "mini", "--device-memory", "1MiB"],
      /does not fit in --device-memory 1\.0 MiB: it needs at least/,
      /samples\/gpt2\.ts:\d+:\d+/,
    );
    expectUserError(
      [
        "plan",
        "samples/gpt2.ts",
        "--preset",
        "mini",
        "--batch",
        "4",
        "--seq",
        "64",
        "--device-memory",
        "120MiB",
        "--host-memory",
        "50MiB",
        "--checkpoint",
        "none",
      ],
      /model data does not fit in --host-memory 50\.0 MiB/,
    );
    // Where the host must also hold activations moved out of the device, the refusal says how much of
    // the need is theirs: the figures of the plan that fits when given exactly the host memory it names.
    const moving = ["plan", "samples/gpt2.ts", "--preset", "mini", "--device-memory", "40MiB"];
    const refused = stow([...moving, "--host-memory", "60MiB"]);
    expect(refused.status).toBe(2);
    const need =
      /the step does not fit in --host-memory 60\.0 MiB: with its model data offloaded, it needs .* \((\d+) bytes\) of host memory/.exec(
        refused.stderr,
      );
    expect(need, refused.stderr).not.toBeNull();
    const enough = JSON.parse(stow([...moving, "--host-memory", need![1], "--json"]).stdout);
    expect(enough.host_bytes).toBe(Number(need![1]));
    expect(enough.checkpoint.moved_bytes_per_step).toBeGreaterThan(0);
    expect(refused.stderr).toContain(
      `${(enough.checkpoint.moved_bytes_per_step / 2 ** 20).toFixed(1)} MiB of it for the activations moved`,
    );
    // Room for the offloaded model data but not for the tokens as well: the runtime refuses.
    const offloaded = ["--device-memory", "100MiB", "--checkpoint", "none"];
    const hostBytes = JSON.parse(
      stow(["plan", "samples/gpt2.ts", "--preset", "mini", ...tiny.slice(0, 8), ...offloaded, "--json"]).stdout,
    ).host_bytes;
    expect(hostBytes).toBeGreaterThan(0);
    expectUserError(
      ["train", "samples/gpt2.ts", "--preset", "mini", ...tiny, "--data", tokens, ...offloaded, "--host-memory", String(hostBytes + 100)],
      /host memory budget of \d+ bytes is too small: the token file needs 800 more bytes/,
    );
  });

  test("a chunk size below the largest tensor, and a link speed that is not positive", () => {
    expectUserError(
      ["plan", "samples/gpt2.ts", "--preset", "mini", "--chunk-size", "1MiB"],
      /--chunk-size 1\.0 MiB is smaller than the largest tensor that must stay whole: transformer\.wte\.weight needs 24\.5 MiB \(25731584 bytes\)/,
    );
    expectUserError(["plan", "samples/gpt2.ts", "--preset", "mini", "--chunk-size", "big"], /--chunk-size/);
    expectUserError(["plan", "samples/gpt2.ts", "--preset", "mini", "--link-gbps", "0"], /--link-gbps/);
    expectUserError(["train", "samples/gpt2.ts", "--preset", "mini", "--link-gbps", "fast"], /--link-gbps/);
  });

  test("a missing or corrupt data file", () => {
    expectUserError(["train", "samples/gpt2.ts", "--preset", "mini", ...tiny, "--data", path.join(dir, "none.bin")], /none\.bin/);
    const truncated = path.join(dir, "truncated.bin");
    writeTokenFile(truncated, [1, 2, 3, 4, 5, 6, 7, 8]);
    const bytes = Buffer.alloc(1024 + 4);
    bytes.writeInt32LE(20240520, 0);
    bytes.writeInt32LE(1, 4);
    bytes.writeInt32LE(1000, 8); // claims 1000 tokens, holds 2
    writeFileSync(truncated, bytes);
    expectUserError(["train", "samples/gpt2.ts", "--preset", "mini", ...tiny, "--data", truncated], /truncated\.bin/, /1000/);
    const bigToken = path.join(dir, "vocab.bin");
    writeTokenFile(
      bigToken,
      Array.from({ length: 100 }, (_, i) => (i === 50 ? 60000 : 5)),
    );
    expectUserError(["train", "samples/gpt2.ts", "--preset", "mini", ...tiny, "--data", bigToken], /vocab\.bin/, /60000/, /50257/);
    // Text is read as bytes below GPT-2's vocabulary; a vocabulary too small even for bytes is said
    // about the user's text, not about the cached token file they never made.
    const text = path.join(dir, "input.txt");
    writeFileSync(text, "export function train() {}\n");
    expectUserError(
      ["train", "samples/gpt2.ts", "--preset", "mini", ...tiny, "--set", "vocab=100", "--data", text],
      /--set vocab=100: --data .*input\.txt \(text\) is read as bytes, which needs a vocabulary of at least 256/,
    );
  });

  test("a truncated or foreign safetensors file", () => {
    const foreign = path.join(dir, "foreign.safetensors");
    writeSafetensors(foreign, [{ name: "encoder.weight", shape: [2, 2], data: new Float32Array(4) }]);
    expectUserError(
      ["train", "samples/gpt2.ts", "--preset", "mini", ...tiny, "--data", tokens, "--init", foreign],
      /foreign\.safetensors/,
      /transformer\.wte\.weight|encoder\.weight/,
    );
    const truncated = path.join(dir, "truncated.safetensors");
    writeFileSync(truncated, Buffer.from([1, 2, 3]));
    expectUserError(
      ["train", "samples/gpt2.ts", "--preset", "mini", ...tiny, "--data", tokens, "--init", truncated],
      /truncated\.safetensors/,
    );
    expectUserError(["generate", truncated], /truncated\.safetensors/);
  });
});
