// Runs one benchmark program to completion and returns its stdout. A program that is missing or fails
// becomes a UserError naming it, with the end of its stderr, so `npm run bench` prints one clear message.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { UserError } from "../base/errors.ts";

export function runChild(what: string, command: string, args: string[], env: NodeJS.ProcessEnv): string {
  const r = spawnSync(command, args, { env, encoding: "utf8", maxBuffer: 256 * 1024 * 1024 });
  if (r.error) throw new UserError(`${what}: cannot run ${command}: ${r.error.message}`);
  if (r.status !== 0) {
    const tail = `${r.stderr ?? ""}${r.stdout ?? ""}`.trim().split("\n").slice(-15).join("\n");
    const how = r.status === null ? `was killed by ${r.signal}` : `exited with status ${r.status}`;
    throw new UserError(`${what}: ${command} ${how}\n${tail}`);
  }
  return r.stdout;
}

/** The last line of a program's stdout, parsed as the JSON object it promised to print. */
export function lastJsonLine<T>(what: string, stdout: string): T {
  const line = stdout.trim().split("\n").at(-1) ?? "";
  try {
    return JSON.parse(line) as T;
  } catch {
    throw new UserError(`${what}: expected a JSON line on stdout, got: ${line.slice(0, 200)}`);
  }
}

/**
 * Runs a program under GNU time and returns its peak resident set size in bytes, alongside its stdout.
 * GNU time measures the process itself, also after an exec (train re-executes itself once).
 */
export function runWithPeakRss(
  what: string,
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  timeFile: string,
): { stdout: string; peakRssBytes: number } {
  const stdout = runChild(what, "/usr/bin/time", ["-v", "-o", timeFile, command, ...args], env);
  return { stdout, peakRssBytes: readMaxRss(what, timeFile) };
}

function readMaxRss(what: string, timeFile: string): number {
  const kib = /Maximum resident set size \(kbytes\): (\d+)/.exec(readFileSync(timeFile, "utf8"))?.[1];
  if (kib === undefined) throw new UserError(`${what}: /usr/bin/time wrote no maximum resident set size`);
  return Number(kib) * 1024;
}

/** A run's --metrics file: one JSON object a step, every field a number. */
export function readMetricsFile<T = Record<string, number>>(file: string): T[] {
  return readFileSync(file, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as T);
}
