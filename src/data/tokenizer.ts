// Which tokenizer turns text into a model's tokens: the model's vocabulary decides, so a checkpoint (whose
// metadata holds the config) always samples with the tokenizer it was trained with. GPT-2's vocabulary and
// larger (50304, as nanoGPT pads it) read GPT-2 BPE; smaller vocabularies read UTF-8 bytes, ids 0-255,
// which small models learn from quickly and which never produce an id a small vocabulary lacks.
import { GPT2_VOCAB_SIZE, decodeTokens, encodeText } from "./tokenize.ts";

export interface Tokenizer {
  /** Short name, part of the data cache's file names. */
  name: "gpt2" | "bytes";
  /** For logs: "GPT-2 BPE", "bytes". */
  label: string;
  /** The smallest vocabulary that holds every id this tokenizer produces. */
  minVocab: number;
  encode(text: string): number[];
  decode(ids: Iterable<number>): string;
}

export const GPT2_BPE: Tokenizer = {
  name: "gpt2",
  label: "GPT-2 BPE",
  minVocab: GPT2_VOCAB_SIZE,
  encode: encodeText,
  decode: decodeTokens,
};

// A byte sequence cut mid-character (a sample's last token) decodes with U+FFFD rather than throwing.
const utf8 = new TextDecoder("utf-8", { fatal: false });

export const BYTES: Tokenizer = {
  name: "bytes",
  label: "bytes",
  minVocab: 256,
  encode: (text) => [...Buffer.from(text, "utf8")],
  decode: decodeBytes,
};

/** Ids above 255 (a vocabulary larger than 256 has them, untrained) stand for no byte: U+FFFD. */
function decodeBytes(ids: Iterable<number>): string {
  let text = "";
  let bytes: number[] = [];
  for (const id of ids) {
    if (id < 256) {
      bytes.push(id);
      continue;
    }
    text += utf8.decode(Uint8Array.from(bytes)) + "\ufffd";
    bytes = [];
  }
  return text + utf8.decode(Uint8Array.from(bytes));
}

export function tokenizerFor(vocab: number): Tokenizer {
  return vocab >= GPT2_VOCAB_SIZE ? GPT2_BPE : BYTES;
}

/** The prompt's tokens for a model of this vocabulary, or one sentence saying why it has none. */
export function encodePrompt(prompt: string, vocab: number): { tokens: number[] } | { problem: string } {
  const tokenizer = tokenizerFor(vocab);
  const tokens = tokenizer.encode(prompt);
  if (tokens.length === 0) return { problem: "the prompt is empty" };
  const outside = tokens.find((t) => t >= vocab);
  if (outside !== undefined)
    return {
      problem:
        `the prompt ${JSON.stringify(prompt)} encodes (${tokenizer.label}) to token ${outside}, ` +
        `outside the model's vocabulary of ${vocab} tokens`,
    };
  return { tokens };
}
