// Sampling text from a trained model through the inference program: the context window is the
// program's fixed sequence length; each new token is drawn from the logits at the last real position
// (causal attention makes the padding after it irrelevant).
import type { Session } from "../../native/index.ts";
import { encodePrompt, tokenizerFor } from "../data/tokenizer.ts";
import { mulberry32 } from "../util/random.ts";

export interface SampleOptions {
  tokens: number;
  temperature: number;
  topK: number;
  seed: number;
}

/**
 * The prompt continued by `opts.tokens` sampled tokens, decoded with the tokenizer of the model's
 * vocabulary; or, when the prompt has no tokens in that vocabulary, why not (nothing is sampled).
 */
export function sampleText(session: Session, prompt: string, opts: SampleOptions): { text: string } | { problem: string } {
  const { vocab } = session.info();
  const encoded = encodePrompt(prompt, vocab);
  if ("problem" in encoded) return encoded;
  return { text: prompt + tokenizerFor(vocab).decode(sampleTokens(session, encoded.tokens, opts)) };
}

export function sampleTokens(session: Session, prompt: number[], opts: SampleOptions): number[] {
  const { inferSeq: window } = session.info();
  const random = mulberry32(opts.seed);
  const out = [...prompt];
  for (let i = 0; i < opts.tokens; i++) {
    const context = out.slice(-window);
    const input = new Int32Array(window);
    input.set(context);
    out.push(pick(session.infer(input, context.length - 1), opts, random));
  }
  return out.slice(prompt.length);
}

function pick(logits: Float32Array, opts: SampleOptions, random: () => number): number {
  const ids = [...logits.keys()].sort((a, b) => logits[b] - logits[a]).slice(0, Math.max(1, opts.topK));
  if (opts.temperature === 0) return ids[0];
  const max = logits[ids[0]];
  const weights = ids.map((id) => Math.exp((logits[id] - max) / opts.temperature));
  let r = random() * weights.reduce((s, w) => s + w, 0);
  for (let i = 0; i < ids.length; i++) {
    r -= weights[i];
    if (r <= 0) return ids[i];
  }
  return ids[ids.length - 1];
}
