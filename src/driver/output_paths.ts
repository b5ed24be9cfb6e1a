// Every file a training run will write is checked before its first step: a checkpoint folder that is
// read-only, full or not a folder must not be found after hours of training, with the trained state
// gone. Each problem is a UserError naming the flag, the path and the reason.
import fs from "node:fs";
import path from "node:path";
import { UserError } from "../../base/errors.ts";
import { removeStaleTemps, tempPathFor } from "../util/atomic_write.ts";
import { describeFsError, fsReason } from "../util/fs_error.ts";

export interface OutputPaths {
  save?: string;
  metrics?: string;
  profile?: string;
  /** The build and data cache (STOW_CACHE_DIR). */
  cache: string;
}

/** Each path can be written; cheap, so it runs before the model is even loaded. */
export function checkOutputPaths(out: OutputPaths): void {
  checkFolder("STOW_CACHE_DIR (the build and data cache)", out.cache, path.join(out.cache, "probe"));
  if (out.save) {
    checkFileTarget("--save", out.save);
    // A killed run's temporaries would count against the space a new checkpoint needs.
    removeStaleTemps(out.save);
  }
  if (out.metrics) checkFileTarget("--metrics", out.metrics);
  if (out.profile) checkFileTarget("--profile", out.profile);
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
  const file = fileInTheWay(folder);
  if (file) throw new UserError(`${what}: ${file} is a file, not a folder`);
  try {
    makeFolders(folder);
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

/** mkdir -p one level at a time: Node's recursive mkdir says ENOENT where the real reason is EROFS. */
function makeFolders(folder: string): void {
  const missing: string[] = [];
  for (let at = folder; !fs.existsSync(at) && path.dirname(at) !== at; at = path.dirname(at)) missing.unshift(at);
  for (const at of missing) fs.mkdirSync(at);
}

/** The nearest existing ancestor of `folder` (itself included) when it is not a folder. */
function fileInTheWay(folder: string): string | undefined {
  for (let at = folder; ; at = path.dirname(at)) {
    let stat: fs.Stats | undefined;
    try {
      stat = fs.statSync(at);
    } catch {
      // absent: look further up
    }
    if (stat) return stat.isDirectory() ? undefined : at;
    if (path.dirname(at) === at) return undefined;
  }
}

/** The checkpoint's file system has room for one more (its size is known once the model is planned). */
export function checkSaveSpace(file: string, bytes: number): void {
  const flag = "--save";
  const folder = path.dirname(path.resolve(file));
  const fsStats = fs.statfsSync(folder);
  const free = fsStats.bavail * fsStats.bsize;
  if (free < bytes)
    throw new UserError(
      `${flag} ${file}: a checkpoint takes ${bytes.toLocaleString("en-US")} bytes, but the file system of ` +
        `${folder} has ${free.toLocaleString("en-US")} bytes free`,
    );
}
