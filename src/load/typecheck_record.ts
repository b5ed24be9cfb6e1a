// A record of model files that type-checked clean, so that running the same model again skips the check:
// loading the TypeScript compiler and checking a model costs about a second of CPU on every `stow` command,
// and most commands run a model that has not changed since the last one.
//
// A record lists every source file the check read (the model, the files it imports, the DSL, the type
// declarations) with a hash of its contents. It is used only when every one of those files still has that
// content, so an edit anywhere in what the model imports brings the check back. A record is a cache: it is
// written best-effort, and one that is missing, unreadable or stale only means the check runs.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { cacheDir } from "../../base/paths.ts";
import { writeFileAtomic } from "../util/atomic_write.ts";

interface CleanRecord {
  files: [path: string, sha256: string][];
}

/** The record's place: one per model path, per compiler and DSL declaration versions. */
function recordPath(modelPath: string): string {
  const require = createRequire(import.meta.url);
  const versionOf = (pkg: string) => {
    try {
      return (JSON.parse(readFileSync(require.resolve(`${pkg}/package.json`), "utf8")) as { version: string }).version;
    } catch {
      return "absent";
    }
  };
  const key = sha256(["typecheck v1", modelPath, versionOf("ts-morph"), versionOf("@types/node")].join("\n"));
  return path.join(cacheDir(), "typecheck", `${key}.json`);
}

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** True when the model at `modelPath` checked clean before and nothing the check read has changed since. */
export function checkedCleanBefore(modelPath: string): boolean {
  let record: CleanRecord;
  try {
    record = JSON.parse(readFileSync(recordPath(modelPath), "utf8")) as CleanRecord;
  } catch {
    return false;
  }
  if (!Array.isArray(record.files) || !record.files.some(([file]) => file === modelPath)) return false;
  return record.files.every(([file, hash]) => {
    try {
      return sha256(readFileSync(file, "utf8")) === hash;
    } catch {
      return false;
    }
  });
}

/**
 * Records that the model checked clean, given the files the check read with the text it read (not what the
 * files hold now, which may have changed since); a failure to write is not an error.
 */
export function recordCheckedClean(modelPath: string, files: readonly { path: string; text: string }[]): void {
  try {
    const record: CleanRecord = { files: files.map((file) => [file.path, sha256(file.text)]) };
    const target = recordPath(modelPath);
    mkdirSync(path.dirname(target), { recursive: true });
    writeFileAtomic(target, JSON.stringify(record));
  } catch {
    // A read-only or full cache folder: the next command checks the model again.
  }
}
