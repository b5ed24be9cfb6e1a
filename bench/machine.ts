// What the results were measured on: the CPU model, its cores, and how busy the machine was (other
// processes on a two-core machine change the numbers, so the load average goes into the report).
import { readFileSync } from "node:fs";
import os from "node:os";

export function cpuModel(): string {
  try {
    return /^model name\s*:\s*(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? os.cpus()[0]?.model ?? "unknown";
  } catch {
    return os.cpus()[0]?.model ?? "unknown";
  }
}

/** The 1, 5 and 15 minute load averages. */
export function loadAverage(): number[] {
  return os.loadavg().map((x) => Math.round(x * 100) / 100);
}
