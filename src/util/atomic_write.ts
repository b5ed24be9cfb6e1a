// Files that readers, crashes and concurrent writers only ever see whole (runtime/core/atomic_file.h is the
// C++ twin, with the same names): written under a name unique to the process and the write,
// path.tmp-<pid>-<random>, fsynced, renamed over the target, and the folder fsynced so that the rename
// survives a power cut. Two processes writing one path each rename a complete file of their own.
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";

export function tempPathFor(target: string): string {
  return `${target}.tmp-${process.pid}-${randomBytes(8).toString("hex")}`;
}

/** Writes `chunks` to `target` atomically; a failure leaves the target as it was and no temporary behind. */
export function writeFileAtomic(target: string, chunks: Uint8Array | string | readonly Uint8Array[]): void {
  const list = typeof chunks === "string" ? [Buffer.from(chunks)] : chunks instanceof Uint8Array ? [chunks] : chunks;
  const tmp = tempPathFor(target);
  const fd = fs.openSync(tmp, "wx");
  try {
    for (const chunk of list) writeFully(fd, chunk);
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  try {
    fs.renameSync(tmp, target);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  syncFolder(path.dirname(target));
}

/** Makes a completed rename in `folder` durable. */
export function syncFolder(folder: string): void {
  const fd = fs.openSync(folder, "r");
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** The pid in a temporary's name (`<anything>.tmp-<pid>-<random>` or `.tmp-<pid>-...`), if it has one. */
export function tempOwner(name: string): number | undefined {
  const m = /\.tmp-(\d+)-/.exec(name);
  return m ? Number(m[1]) : undefined;
}

export function processIsGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "ESRCH";
  }
}

/**
 * Removes the temporaries of `target` that processes no longer alive left behind (a kill -9 mid-write);
 * a live process's may be being written right now and stay. Returns the names removed.
 */
export function removeStaleTemps(target: string): string[] {
  const folder = path.dirname(target);
  const prefix = `${path.basename(target)}.tmp-`;
  let names: string[];
  try {
    names = fs.readdirSync(folder);
  } catch {
    return [];
  }
  const stale = names.filter((n) => n.startsWith(prefix) && isStale(n));
  for (const n of stale) fs.rmSync(path.join(folder, n), { force: true, recursive: true });
  return stale;
}

/** A temporary name whose owner is gone. */
export function isStale(name: string): boolean {
  const pid = tempOwner(name);
  return pid !== undefined && processIsGone(pid);
}

function writeFully(fd: number, bytes: Uint8Array): void {
  // One writeSync moves at most 2 GiB; checkpoints of large models are bigger.
  for (let done = 0; done < bytes.length;) done += fs.writeSync(fd, bytes, done, Math.min(bytes.length - done, 1 << 30));
}
