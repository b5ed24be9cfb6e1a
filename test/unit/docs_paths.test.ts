// The architecture map and the subsystem pages name files so that a newcomer can open them. A file
// that moves or goes away must take its mentions with it: every repository path the pages name in
// backquotes must exist (a pattern with * or {} must match at least one file).
import { existsSync, readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { describe, expect, test } from "vitest";
import { repoRoot } from "../../base/paths.ts";

const TOP_DIRS = ["base", "bench", "codegen", "docs", "ir", "native", "plan", "runtime", "samples", "scripts", "src", "test"];
const PAGES = ["ARCHITECTURE.md", "README.md", ...readdirSync(path.join(repoRoot, "docs")).map((f) => `docs/${f}`)];

/** Paths in backquotes that start at a top-level folder, without a trailing `:line` or punctuation. */
function namedPaths(text: string): string[] {
  const found = new Set<string>();
  for (const [, inner] of text.matchAll(/`([^`\s]+)`/g)) {
    const p = inner.replace(/[:#].*$/, "").replace(/[.,;)]+$/, "");
    if (TOP_DIRS.some((d) => p === d || p.startsWith(`${d}/`))) found.add(p);
  }
  return [...found];
}

/** Whether a path, or a pattern with * and {a,b}, names something in the repository. */
function exists(p: string): boolean {
  const brace = p.match(/\{([^}]*)\}/);
  if (brace) return brace[1].split(",").some((alt) => exists(p.replace(brace[0], alt)));
  if (!p.includes("*")) return existsSync(path.join(repoRoot, p));
  const dir = path.dirname(p);
  if (dir.includes("*") || !existsSync(path.join(repoRoot, dir))) return false;
  const name = new RegExp(
    `^${path
      .basename(p)
      .replace(/[.+?^$()|[\]\\]/g, "\\$&")
      .replace(/\*/g, ".*")}$`,
  );
  return readdirSync(path.join(repoRoot, dir)).some((f) => name.test(f));
}

describe("the pages name files that exist", () => {
  test.each(PAGES)("%s", (page) => {
    const text = readFileSync(path.join(repoRoot, page), "utf8");
    expect(namedPaths(text).filter((p) => !exists(p))).toEqual([]);
  });
});
