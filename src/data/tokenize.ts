// GPT-2 BPE: the r50k_base tables that ship inside gpt-tokenizer, so nothing is downloaded.
import { decode, encode } from "gpt-tokenizer/encoding/r50k_base";

export const GPT2_VOCAB_SIZE = 50257;

/**
 * Text is encoded as ordinary text: a literal "<|endoftext|>" in the input becomes its characters' tokens,
 * never the special token (as tiktoken's encode_ordinary, which llm.c's data scripts use for plain text).
 */
export function encodeText(text: string): number[] {
  return encode(text, { disallowedSpecial: new Set() });
}

export function decodeTokens(ids: Iterable<number>): string {
  return decode(ids);
}
