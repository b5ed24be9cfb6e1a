// Opens a file the user named for reading; a missing file or a directory is a UserError naming it and
// what was expected there: `kind` ("token file") and, with its article, `expected` ("an llm.c token file").
import fs from "node:fs";
import { UserError } from "../../base/errors.ts";

export function openForReading(path: string, kind: string, expected: string): number {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(path);
  } catch {
    throw new UserError(`${path}: ${kind} not found`);
  }
  if (stat.isDirectory()) throw new UserError(`${path}: is a directory, expected ${expected}`);
  return fs.openSync(path, "r");
}
