// Formatting shared by the report's sections: Markdown tables, numbers as the tables print them, and
// an environment as one line.
import type { EnvSummary } from "./results.ts";

export const int = (x: number) => Math.round(x).toLocaleString("en-US");
export const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
export const signedPct = (x: number) => `${x >= 0 ? "+" : ""}${pct(x)}`;

export function table(head: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [line(head), line(head.map(() => "---")), ...rows.map(line)].join("\n");
}

export function envLine(e: EnvSummary): string {
  return Object.entries(e)
    .map(([k, v]) => `${k}=${v ?? "(unset)"}`)
    .join(", ");
}
