import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { UserError } from "../../base/errors.ts";
import { builtinCorpusText } from "../../src/data/corpus.ts";
import { makeMarkovCorpus } from "../../src/data/synthetic.ts";
import { checkVocab, inspectTokenFile, readTokenFile, writeTokenFile } from "../../src/data/token_file.ts";
import { decodeTokens, encodeText } from "../../src/data/tokenize.ts";
import { prepareData, shuffleWindows } from "../../src/data/prepare_data.ts";
import { expectUserError } from "../helpers/expect_error.ts";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "stow-data-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const file = (name: string) => path.join(dir, name);

async function expectUserErrorAsync(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await expect(promise).rejects.toBeInstanceOf(UserError);
  await expect(promise).rejects.toThrow(pattern);
}

/** A token file built byte by byte: 256 int32 header words, then uint16 tokens. */
function craftTokenFile(name: string, header: [number, number, number], tokens: number[]): string {
  const bytes = Buffer.alloc(1024 + 2 * tokens.length);
  header.forEach((v, i) => bytes.writeInt32LE(v, 4 * i));
  tokens.forEach((t, i) => bytes.writeUInt16LE(t, 1024 + 2 * i));
  fs.writeFileSync(file(name), bytes);
  return file(name);
}

describe("llm.c token files", () => {
  it("round trip with the documented layout", () => {
    const p = file("round.bin");
    writeTokenFile(p, [0, 1, 50256, 65535]);
    const bytes = fs.readFileSync(p);
    expect(bytes.length).toBe(1024 + 8);
    expect([bytes.readInt32LE(0), bytes.readInt32LE(4), bytes.readInt32LE(8)]).toEqual([20240520, 1, 4]);
    expect(bytes.readUInt16LE(1024 + 4)).toBe(50256);
    expect(Array.from(readTokenFile(p))).toEqual([0, 1, 50256, 65535]);
    expect(inspectTokenFile(p)).toEqual({ count: 4 });
    expect(Array.from(readTokenFile(craftTokenFile("hand.bin", [20240520, 1, 3], [7, 8, 9])))).toEqual([7, 8, 9]);
    expect(fs.readdirSync(dir).filter((f) => f.includes(".tmp"))).toEqual([]);
  });

  it("rejects tokens that do not fit uint16", () => {
    expectUserError(() => writeTokenFile(file("x.bin"), [1, 70000]), /token 70000 at index 1/);
  });

  it("names the file and byte offset of each corruption", () => {
    fs.writeFileSync(file("short.bin"), Buffer.alloc(100));
    for (const read of [readTokenFile, inspectTokenFile]) {
      expectUserError(() => read(file("short.bin")), /short\.bin: too short for an llm\.c token file: 100 bytes, the header alone is 1024/);
      expectUserError(
        () => read(craftTokenFile("magic.bin", [12345, 1, 0], [])),
        /magic\.bin: not an llm\.c token file: magic at byte 0 is 12345, expected 20240520/,
      );
      expectUserError(
        () => read(craftTokenFile("version.bin", [20240520, 2, 0], [])),
        /version\.bin: unsupported token file version 2 at byte 4/,
      );
      expectUserError(
        () => read(craftTokenFile("count.bin", [20240520, 1, 4], [1, 2, 3])),
        /count\.bin: token count 4 at byte 8 needs 1032 bytes .* but the file has 1030 bytes/,
      );
      expectUserError(() => read(craftTokenFile("neg.bin", [20240520, 1, -1], [])), /neg\.bin: negative token count -1 at byte 8/);
      expectUserError(() => read(file("absent.bin")), /absent\.bin: token file not found/);
      expectUserError(() => read(dir), /is a directory/);
    }
  });

  it("checkVocab names the first token outside the vocabulary", () => {
    checkVocab(new Uint16Array([0, 63, 5]), 64, "ok.bin");
    expectUserError(
      () => checkVocab(new Uint16Array([1, 2, 70, 99]), 64, "v.bin"),
      /v\.bin: token 70 at index 2 \(byte 1028\) is outside the model's vocabulary of 64/,
    );
  });
});

describe("GPT-2 tokenizer", () => {
  it("matches GPT-2's published ids and round-trips text", () => {
    // Ids from GPT-2's encoder.json: "Hello" 15496, " world" 995, "!" 0.
    expect(encodeText("Hello world!")).toEqual([15496, 995, 0]);
    const sample = "Stowage plans memory before a step runs.\n\tÜnïcödé, emoji 🚀 and 中文 survive; so does <|endoftext|>.";
    const ids = encodeText(sample);
    expect(ids.every((t) => t >= 0 && t < 50257)).toBe(true);
    expect(ids).not.toContain(50256); // a literal "<|endoftext|>" in text is text, not the special token
    expect(decodeTokens(ids)).toBe(sample);
  });

  it("tokenizes 1 MB of text in reasonable time", () => {
    // Varied pseudo-words, so the BPE merge cache does not make this look faster than real text.
    let seed = 7;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    const syllables = ["ka", "lo", "mi", "tra", "pen", "sur", "ox", "qui", "bel", "dor", "ng", "e", "a", "st"];
    const parts: string[] = [];
    let size = 0;
    while (size < 1 << 20) {
      let word = "";
      for (let s = 1 + Math.floor(next() * 4); s > 0; s--) word += syllables[Math.floor(next() * syllables.length)];
      const piece = next() < 0.1 ? `${word}.\n` : `${word} `;
      parts.push(piece);
      size += piece.length;
    }
    const text = parts.join("");
    const start = performance.now();
    const ids = encodeText(text);
    const seconds = (performance.now() - start) / 1000;
    console.log(`tokenized ${text.length} bytes into ${ids.length} tokens in ${seconds.toFixed(2)} s`);
    expect(decodeTokens(ids)).toBe(text);
    expect(seconds).toBeLessThan(30);
  });
});

describe("prepareData", () => {
  const cache = file("cache");

  it("tokenizes text once and reuses the cached token file", async () => {
    const text = "The quick brown fox jumps over the lazy dog.\n".repeat(50);
    fs.writeFileSync(file("fox.txt"), text);
    const first = await prepareData(file("fox.txt"), cache);
    expect(path.dirname(first.tokenFile)).toBe(cache);
    expect(first.tokens).toBe(encodeText(text).length);
    expect(Array.from(readTokenFile(first.tokenFile))).toEqual(encodeText(text));
    expect(first.source).toMatch(/fox\.txt, tokenized/);

    const mtime = fs.statSync(first.tokenFile).mtimeMs;
    const second = await prepareData(file("fox.txt"), cache);
    expect(second.tokenFile).toBe(first.tokenFile);
    expect(second.source).toMatch(/cached/);
    expect(fs.statSync(first.tokenFile).mtimeMs).toBe(mtime);

    fs.writeFileSync(file("fox2.txt"), text + "One more line.\n");
    expect((await prepareData(file("fox2.txt"), cache)).tokenFile).not.toBe(first.tokenFile);
  });

  it("rebuilds a damaged cache entry", async () => {
    const { tokenFile } = await prepareData(file("fox.txt"), cache);
    fs.writeFileSync(tokenFile, Buffer.alloc(10));
    const again = await prepareData(file("fox.txt"), cache);
    expect(again.source).toMatch(/tokenized/);
    expect(inspectTokenFile(tokenFile).count).toBe(again.tokens);
  });

  it("uses an llm.c token file as is", async () => {
    const p = craftTokenFile("given.bin", [20240520, 1, 3], [5, 6, 7]);
    expect(await prepareData(p, cache)).toEqual({ tokenFile: p, tokens: 3, source: `token file ${p}` });
    const broken = craftTokenFile("broken.bin", [20240520, 1, 9], [5, 6, 7]);
    await expectUserErrorAsync(prepareData(broken, cache), /broken\.bin: token count 9 at byte 8/);
  });

  it("names the path and the --data flag for unusable inputs", async () => {
    await expectUserErrorAsync(prepareData(file("nope.txt"), cache), /--data .*nope\.txt: no such file/);
    await expectUserErrorAsync(prepareData(dir, cache), /--data .*: is a directory/);
    fs.writeFileSync(file("empty.txt"), "");
    await expectUserErrorAsync(prepareData(file("empty.txt"), cache), /--data .*empty\.txt: the file is empty/);
    // A genuine U+FFFD (EF BF BD) first, then a stray continuation byte at offset 7.
    fs.writeFileSync(file("binary.dat"), Buffer.from([0x61, 0x62, 0xef, 0xbf, 0xbd, 0x63, 0x64, 0x80, 0x65]));
    await expectUserErrorAsync(
      prepareData(file("binary.dat"), cache),
      /binary\.dat: neither an llm\.c token file .* nor UTF-8 text \(invalid byte 0x80 at byte 7\)/,
    );
  });

  it("can shuffle the tokens in whole windows, the same way every time, a partial last window last", () => {
    const tokens = Array.from({ length: 103 }, (_, i) => i);
    const out = shuffleWindows(tokens, 10);
    expect(out.slice(100)).toEqual([100, 101, 102]);
    const starts = Array.from({ length: 10 }, (_, k) => out[10 * k]);
    starts.forEach((w, k) => expect(out.slice(10 * k, 10 * k + 10)).toEqual(Array.from({ length: 10 }, (_, i) => w + i)));
    expect([...starts].sort((a, b) => a - b)).toEqual([0, 10, 20, 30, 40, 50, 60, 70, 80, 90]);
    expect(starts).not.toEqual([0, 10, 20, 30, 40, 50, 60, 70, 80, 90]);
    expect(shuffleWindows(tokens, 10)).toEqual(out);
  });

  it("defaults to the built-in corpus of the project's own source", async () => {
    const text = builtinCorpusText();
    const headers = text
      .split("\n")
      .filter((l) => l.startsWith("// file: "))
      .map((l) => l.slice(9));
    expect(headers).toContain("src/data/corpus.ts");
    expect(headers).toEqual([...headers].sort());
    expect(headers.every((h) => /\.(ts|cpp|h|njk|md|cc)$/.test(h) && !h.includes("node_modules"))).toBe(true);
    expect(text).toContain(fs.readFileSync(new URL("../../src/data/corpus.ts", import.meta.url), "utf8"));

    const start = performance.now();
    const prepared = await prepareData(undefined, cache);
    console.log(`built-in corpus: ${text.length} chars, ${prepared.tokens} tokens, ${((performance.now() - start) / 1000).toFixed(2)} s`);
    expect(prepared.tokens).toBe(encodeText(text).length);
    expect(prepared.source).toMatch(/built-in corpus/);
  });
});

describe("synthetic Markov corpus", () => {
  /** Plug-in estimate of H(next | current) in nats, from bigram counts. */
  function empiricalConditionalEntropy(tokens: Uint16Array, vocab: number): number {
    const pair = new Float64Array(vocab * vocab);
    const from = new Float64Array(vocab);
    for (let t = 0; t + 1 < tokens.length; t++) {
      pair[tokens[t] * vocab + tokens[t + 1]] += 1;
      from[tokens[t]] += 1;
    }
    let h = 0;
    const n = tokens.length - 1;
    for (let i = 0; i < vocab; i++) {
      for (let j = 0; j < vocab; j++) {
        const c = pair[i * vocab + j];
        if (c > 0) h -= (c / n) * Math.log(c / from[i]);
      }
    }
    return h;
  }

  // Observed errors are about 0.1% (sampling noise plus the plug-in estimator's small downward bias);
  // 0.5% still fails when the rows are weighted uniformly instead of by the stationary distribution.
  it("has the stated entropy rate (empirical within 0.5%)", () => {
    for (const [vocab, k] of [
      [64, 4],
      [256, 16],
      [30, 30],
    ] as const) {
      const { tokens, entropyRate } = makeMarkovCorpus({ vocab, k, length: 2_000_000, seed: vocab });
      const empirical = empiricalConditionalEntropy(tokens, vocab);
      expect(Math.abs(empirical - entropyRate) / entropyRate).toBeLessThan(0.005);
      expect(entropyRate).toBeLessThan(Math.log(k) + 1e-12); // no row can beat uniform over k
    }
  });

  it("allows exactly k successors per symbol and is deterministic per seed", () => {
    const { tokens } = makeMarkovCorpus({ vocab: 50, k: 3, length: 200_000, seed: 9 });
    const successors = Array.from({ length: 50 }, () => new Set<number>());
    for (let t = 0; t + 1 < tokens.length; t++) successors[tokens[t]].add(tokens[t + 1]);
    expect(successors.every((s) => s.size === 3)).toBe(true);
    const again = makeMarkovCorpus({ vocab: 50, k: 3, length: 200_000, seed: 9 });
    expect(again.tokens).toEqual(tokens);
    expect(makeMarkovCorpus({ vocab: 50, k: 3, length: 1000, seed: 10 }).tokens).not.toEqual(tokens.subarray(0, 1000));
  });

  it("k = 1 is a deterministic cycle with zero entropy", () => {
    const { tokens, entropyRate } = makeMarkovCorpus({ vocab: 5, k: 1, length: 12, seed: 1 });
    expect(entropyRate).toBe(0);
    for (let t = 1; t < tokens.length; t++) expect(tokens[t]).toBe((tokens[t - 1] + 1) % 5);
  });
});
