// Runs the stow CLI and the PyTorch reference as a user would, from the repository root.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function stow(args: string[], env: Record<string, string> = {}, cwd = repoRoot): Run {
  const r = spawnSync(process.execPath, [path.join(repoRoot, "bin/stow.js"), ...args], {
    cwd,
    encoding: "utf8",
    env: { ...process.env, ...env },
    maxBuffer: 64 << 20,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The stow CLI started in the background: signal it, and await how it ended. */
export function startStow(
  args: string[],
  env: Record<string, string> = {},
): { child: ChildProcess; done: Promise<Run & { signal: string | null }> } {
  const child = spawn(process.execPath, [path.join(repoRoot, "bin/stow.js"), ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d) => (stdout += d));
  child.stderr!.on("data", (d) => (stderr += d));
  const done = new Promise<Run & { signal: string | null }>((resolve) =>
    child.on("close", (status, signal) => resolve({ status, signal, stdout, stderr })),
  );
  return { child, done };
}

/** Polls until `ready()` holds (a file appeared, a run got far enough); fails the test after `seconds`. */
export async function waitFor(ready: () => boolean, what: string, seconds = 120): Promise<void> {
  const until = Date.now() + seconds * 1000;
  while (!ready()) {
    if (Date.now() > until) throw new Error(`timed out after ${seconds} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A reference script of test/reference/ run by Debian's python3 (it has torch); the one first on PATH may not. */
export function torchReference(script: string, args: string[]): Run {
  const r = spawnSync("/usr/bin/python3", [path.join(repoRoot, "test/reference", script), ...args], {
    cwd: repoRoot,
    encoding: "utf8",
    maxBuffer: 64 << 20,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function readMetrics(file: string): Record<string, number>[] {
  return readFileSync(file, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
}

/** The pid of `rank`'s train process among the descendants of `root` (OpenMPI names it in the environment). */
export function mpiRankProcess(root: number, rank: number): number | undefined {
  const parent = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      parent.set(Number(entry), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {
      // exited meanwhile
    }
  }
  const descends = (pid: number): boolean => pid === root || (parent.has(pid) && pid > 1 && descends(parent.get(pid)!));
  for (const pid of parent.keys()) {
    if (pid === root || !descends(pid)) continue;
    try {
      const env = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      if (cmd.includes("/train\0") && env.includes(`OMPI_COMM_WORLD_RANK=${rank}`)) return pid;
    } catch {
      // exited meanwhile
    }
  }
  return undefined;
}
