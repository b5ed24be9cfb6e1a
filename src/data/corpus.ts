// The built-in training corpus: Stowage's own source text. It ships with every checkout, so `stow train`
// runs without any download, and code is a corpus a small model visibly learns from.
import fs from "node:fs";
import nodePath from "node:path";
import { fileURLToPath } from "node:url";

const CORPUS_DIRS = ["src", "ir", "codegen", "runtime", "samples", "native"];
const CORPUS_EXTENSIONS = new Set([".ts", ".cpp", ".h", ".njk", ".md", ".cc"]);
const CORPUS_TOP_FILES = ["README.md", "ARCHITECTURE.md"];
// Build outputs and installed packages are not the project's own text.
const SKIPPED_DIRS = new Set(["node_modules", "build"]);

/** This file is src/data/corpus.ts, so the repository root is two levels up. */
const REPO_ROOT = nodePath.resolve(nodePath.dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Each file is preceded by a line `// file: <path relative to the repo root>`; files in sorted path order. */
export function builtinCorpusText(): string {
  const files = [
    ...CORPUS_TOP_FILES.filter((f) => fs.existsSync(nodePath.join(REPO_ROOT, f))),
    ...CORPUS_DIRS.flatMap((dir) => listSourceFiles(dir)),
  ].sort(); // plain code-unit order, so the corpus is the same under every locale
  return files.map((rel) => `// file: ${rel}\n${fs.readFileSync(nodePath.join(REPO_ROOT, rel), "utf8")}`).join("\n");
}

/** Relative paths (with `/`) of corpus files under `dir`, which is relative to the repo root. */
function listSourceFiles(dir: string): string[] {
  const absolute = nodePath.join(REPO_ROOT, dir);
  if (!fs.existsSync(absolute)) return [];
  const found: string[] = [];
  for (const entry of fs.readdirSync(absolute, { withFileTypes: true })) {
    const rel = `${dir}/${entry.name}`;
    if (entry.isDirectory()) {
      if (!SKIPPED_DIRS.has(entry.name) && !entry.name.startsWith(".")) found.push(...listSourceFiles(rel));
    } else if (entry.isFile() && CORPUS_EXTENSIONS.has(nodePath.extname(entry.name))) {
      found.push(rel);
    }
  }
  return found;
}
