// The preparation of `--data`: whatever the user passes becomes an llm.c token file the runtime can read.
import crypto from "node:crypto";
import fs from "node:fs";
import nodePath from "node:path";
import { UserError } from "../../base/errors.ts";
import { builtinCorpusText } from "./corpus.ts";
import { inspectTokenFile, TOKEN_FILE_MAGIC, writeTokenFile } from "./token_file.ts";
import { GPT2_VOCAB_SIZE } from "./tokenize.ts";
import { type Tokenizer, tokenizerFor } from "./tokenizer.ts";
import { mulberry32 } from "../util/random.ts";

export interface PreparedData {
  tokenFile: string;
  tokens: number;
  /** One line for logs and reports: where the tokens came from. */
  source: string;
}

/**
 * Turns `--data` into a token file for a model of vocabulary `vocab`: undefined means the built-in corpus;
 * an llm.c token file (by its magic) is validated and used as is; anything else is UTF-8 text, tokenized
 * once with the vocabulary's tokenizer and cached in `cacheDir` under the tokenizer's name and the sha256
 * of its bytes.
 *
 * The built-in corpus is the project's files one after another, and a batch is consecutive tokens, so in
 * file order each step would see one file (prose, then TypeScript, then C++) and the loss would follow the
 * file more than the learning. Given the run's sequence length `seq`, its tokens are cut into windows of
 * that length, shuffled with a fixed seed: each row of a batch is a run of one file, each batch samples the
 * whole project, and the loss falls steadily.
 */
export async function prepareData(
  dataPath: string | undefined,
  cacheDir: string,
  vocab = GPT2_VOCAB_SIZE,
  seq?: number,
): Promise<PreparedData> {
  const tokenizer = tokenizerFor(vocab);
  const textTokenizer = (what: string) => {
    if (vocab < tokenizer.minVocab)
      throw new UserError(
        `--set vocab=${vocab}: ${what} is read as ${tokenizer.label}, which needs a vocabulary of at ` +
          `least ${tokenizer.minVocab}; raise vocab, or pass an llm.c token file with --data`,
      );
    return tokenizer;
  };
  if (dataPath === undefined) {
    const text = builtinCorpusText();
    return tokenizeCached(
      Buffer.from(text, "utf8"),
      text,
      cacheDir,
      "built-in corpus (Stowage's own source)",
      textTokenizer("the built-in corpus"),
      seq,
    );
  }
  const bytes = readDataFile(dataPath);
  if (bytes.length >= 4 && bytes.readInt32LE(0) === TOKEN_FILE_MAGIC) {
    const { count } = inspectTokenFile(dataPath);
    return { tokenFile: dataPath, tokens: count, source: `token file ${dataPath}` };
  }
  const text = decodeUtf8(dataPath, bytes);
  return tokenizeCached(bytes, text, cacheDir, `text ${dataPath}`, textTokenizer(`--data ${dataPath} (text)`));
}

function readDataFile(dataPath: string): Buffer {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(dataPath);
  } catch {
    throw new UserError(`--data ${dataPath}: no such file (expected UTF-8 text or an llm.c token file)`);
  }
  if (stat.isDirectory()) {
    throw new UserError(`--data ${dataPath}: is a directory; pass one UTF-8 text file or an llm.c token file`);
  }
  if (stat.size === 0) throw new UserError(`--data ${dataPath}: the file is empty`);
  return fs.readFileSync(dataPath);
}

function decodeUtf8(dataPath: string, bytes: Buffer): string {
  const text = bytes.toString("utf8");
  const offset = firstInvalidUtf8Byte(bytes, text);
  if (offset !== undefined) {
    throw new UserError(
      `--data ${dataPath}: neither an llm.c token file (no magic ${TOKEN_FILE_MAGIC} at byte 0) ` +
        `nor UTF-8 text (invalid byte 0x${bytes[offset].toString(16).padStart(2, "0")} at byte ${offset})`,
    );
  }
  return text;
}

/**
 * Node's lenient decoder turns each invalid sequence into U+FFFD; the first U+FFFD that the file does not
 * spell out as the bytes EF BF BD is the first invalid byte. Everything before it decoded faithfully, so
 * its UTF-8 length is that byte's offset.
 */
function firstInvalidUtf8Byte(bytes: Buffer, text: string): number | undefined {
  let charIndex = 0;
  let byteOffset = 0;
  for (let i = text.indexOf("\ufffd"); i !== -1; i = text.indexOf("\ufffd", i + 1)) {
    byteOffset += Buffer.byteLength(text.slice(charIndex, i));
    charIndex = i;
    if (bytes[byteOffset] !== 0xef || bytes[byteOffset + 1] !== 0xbf || bytes[byteOffset + 2] !== 0xbd) {
      return byteOffset;
    }
  }
  return undefined;
}

async function tokenizeCached(
  bytes: Buffer,
  text: string,
  cacheDir: string,
  source: string,
  tokenizer: Tokenizer,
  window?: number,
): Promise<PreparedData> {
  const digest = crypto.createHash("sha256").update(bytes).digest("hex");
  const tokenFile = nodePath.join(cacheDir, `${tokenizer.name}-${digest}${window ? `-windows${window}` : ""}.bin`);
  const order = window ? `, in shuffled windows of ${window}` : "";
  if (fs.existsSync(tokenFile)) {
    try {
      return { tokenFile, tokens: inspectTokenFile(tokenFile).count, source: `${source}, cached ${tokenizer.label} tokens${order}` };
    } catch {
      // A damaged cache entry is rebuilt below, not reported: the text it came from is still at hand.
    }
  }
  const tokens = window ? shuffleWindows(tokenizer.encode(text), window) : tokenizer.encode(text);
  fs.mkdirSync(cacheDir, { recursive: true });
  writeTokenFile(tokenFile, tokens);
  return { tokenFile, tokens: tokens.length, source: `${source}, tokenized as ${tokenizer.label}${order}` };
}

/** The tokens in windows of `window`, in a fixed pseudo-random order (Fisher-Yates); a last partial window stays last. */
export function shuffleWindows(tokens: readonly number[], window: number): number[] {
  const whole = Math.floor(tokens.length / window);
  const order = Array.from({ length: whole }, (_, i) => i);
  const random = mulberry32(20240520);
  for (let i = whole - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return [...order.flatMap((w) => tokens.slice(w * window, (w + 1) * window)), ...tokens.slice(whole * window)];
}
