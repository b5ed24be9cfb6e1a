// Runs the stow CLI and the PyTorch reference as a user would, from the repository root.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function stow(args: string[], env: Record<string, string> = {}): Run {
  const r = spawnSync(process.execPath, [path.join(repoRoot, "bin/stow.js"), ...args], {
    cwd: repoRoot, encoding: "utf8", env: { ...process.env, ...env }, maxBuffer: 64 << 20,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A reference script of test/reference/ run by Debian's python3 (it has torch); the one first on PATH may not. */
export function torchReference(script: string, args: string[]): Run {
  const r = spawnSync("/usr/bin/python3", [path.join(repoRoot, "test/reference", script), ...args], {
    cwd: repoRoot, encoding: "utf8", maxBuffer: 64 << 20,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function readMetrics(file: string): Record<string, number>[] {
  return readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l));
}
