// Filesystem failures are the user's to fix (a read-only mount, a full disk, a file where a folder
// should be), so they are reported as such, naming the path and the reason in words, never as a bug.
const REASONS: Record<string, string> = {
  EROFS: "the file system is read-only",
  ENOSPC: "no space left on the device",
  EDQUOT: "the disk quota is exhausted",
  ENOTDIR: "a part of the path is a file, not a folder",
  EISDIR: "it is a folder",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  ENOENT: "no such file or folder",
  EEXIST: "it already exists",
  ENAMETOOLONG: "the name is too long",
  EMFILE: "too many open files",
};

/** "the file system is read-only" for a Node filesystem error we know, else undefined. */
export function fsReason(error: unknown): string | undefined {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return typeof code === "string" ? REASONS[code] : undefined;
}

/** "cannot write out/x.st: the file system is read-only" for a Node filesystem error, else undefined. */
export function describeFsError(error: unknown, action?: string): string | undefined {
  const e = error as (NodeJS.ErrnoException & { dest?: string }) | null;
  if (!(e instanceof Error) || typeof e.code !== "string" || !(e.code in REASONS)) return undefined;
  const verb = action ?? (e.syscall ? (SYSCALL_VERBS[e.syscall] ?? e.syscall) : "use");
  const where = e.path ?? "a file";
  return `cannot ${verb} ${where}: ${REASONS[e.code]}${e.dest ? ` (to ${e.dest})` : ""}`;
}

const SYSCALL_VERBS: Record<string, string> = {
  open: "open",
  mkdir: "create the folder",
  write: "write",
  rename: "rename",
  unlink: "remove",
  rmdir: "remove",
  scandir: "list",
  stat: "read",
  lstat: "read",
  read: "read",
  fsync: "sync",
  copyfile: "copy",
  mkdtemp: "create a folder in",
  statfs: "inspect the file system of",
  access: "write to",
  link: "link",
};
