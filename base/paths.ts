// Where Stowage keeps what it can rebuild: built plans, tokenized data.
import path from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export function cacheDir(): string {
  return process.env.STOW_CACHE_DIR ?? path.join(repoRoot, ".stow-cache");
}
