// The benchmark's training data: the built-in corpus as an llm.c token file, GPT-2 BPE tokens folded into
// the config's vocabulary (t % vocab) so a smaller vocabulary still gets valid ids. Speed does not depend
// on which tokens they are; both frameworks read the same file in the same order.
import path from "node:path";
import { builtinCorpusText } from "../src/data/corpus.ts";
import { encodeText } from "../src/data/tokenize.ts";
import { writeTokenFile } from "../src/data/token_file.ts";

let corpusTokens: number[] | undefined;

export function writeBenchTokens(workDir: string, vocab: number): string {
  corpusTokens ??= encodeText(builtinCorpusText());
  const file = path.join(workDir, `tokens-${vocab}.bin`);
  writeTokenFile(
    file,
    Uint16Array.from(corpusTokens, (t) => t % vocab),
  );
  return file;
}
