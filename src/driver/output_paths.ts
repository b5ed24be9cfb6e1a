// Every file a training run will write is checked before its first step: a checkpoint folder that is
// read-only, full or not a folder must not be found after hours of training, with the trained state
// gone. Each problem is a UserError naming the flag, the path and the reason.
import fs from "node:fs";
import path from "node:path";
import { UserError } from "../cli/errors.ts";
import { removeStaleTemps, tempPathFor } from "../util/atomic_write.ts";
import { describeFsError, fsReason } from "../util/fs_error.ts";

export interface OutputPaths {
  /** --save, with the bytes one checkpoint takes. */
  save?: { path: string; bytes: number };
  metrics?: string;
  profile?: string;
  /** The build and data cache (STOW_CACHE_DIR). */
  cache: string;
}

export function checkOutputPaths(out: OutputPaths): void {
  if (out.save) {
    checkFileTarget("--save", out.save.path);
    // A killed run's temporaries would count against the space a new checkpoint needs.
    removeStaleTemps(out.save.path);
    checkSpace("--save", out.save.path, out.save.bytes);
  }
  if (out.metrics) checkFileTarget("--metrics", out.metrics);
  if (out.profile) checkFileTarget("--profile", out.profile);
  checkFolder("STOW_CACHE_DIR (the build and data cache)", out.cache, out.cache);
}

/** The folder exists (made if need be) and takes a new file; the path itself, if present, is a writable file. */
function checkFileTarget(flag: string, file: string): void {
  const folder = path.dirname(path.resolve(file));
  checkFolder(`${flag} ${file}`, folder, file);
  let stat: fs.Stats | undefined;
  try {
    stat = fs.statSync(file);
  } catch {
    return; // absent: the folder's probe said a file can be made there
  }
  if (stat.isDirectory()) throw new UserError(`${flag} ${file}: is a folder; give a file name in it`);
  try {
    fs.accessSync(file, fs.constants.W_OK);
  } catch (e) {
    throw new UserError(`${flag} ${file}: ${describeFsError(e, "write") ?? (e as Error).message}`);
  }
}

/** Makes the folder if it is missing, then creates and removes an empty file in it: the real test of writability (root ignores permissions, not read-only mounts). */
function checkFolder(what: string, folder: string, target: string): void {
  try {
    fs.mkdirSync(folder, { recursive: true });
  } catch (e) {
    throw new UserError(`${what}: ${describeFsError(e, "create the folder") ?? (e as Error).message}`);
  }
  const probe = tempPathFor(path.join(folder, path.basename(target)));
  try {
    fs.closeSync(fs.openSync(probe, "wx"));
  } catch (e) {
    throw new UserError(`${what}: cannot write in ${folder}: ${fsReason(e) ?? (e as Error).message}`);
  }
  fs.rmSync(probe, { force: true });
}

function checkSpace(flag: string, file: string, bytes: number): void {
  const folder = path.dirname(path.resolve(file));
  const fsStats = fs.statfsSync(folder);
  const free = fsStats.bavail * fsStats.bsize;
  if (free < bytes)
    throw new UserError(`${flag} ${file}: a checkpoint takes ${bytes.toLocaleString("en-US")} bytes, but the file system of ` +
      `${folder} has ${free.toLocaleString("en-US")} bytes free`);
}
