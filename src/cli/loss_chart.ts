// The loss curve of a finished run as a few lines of terminal text: one column per group of steps (their
// mean, so one noisy step does not stand for its neighbours), bars drawn with eighth blocks, the first
// and last losses on the axis. It reads at a glance whether the run learned.

const EIGHTHS = [" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"];

export interface ChartOptions {
  /** Columns of bars at most (default 60). */
  width?: number;
  /** Rows of bars (default 8). */
  height?: number;
}

export function lossChart(losses: readonly number[], opts: ChartOptions = {}): string[] {
  const finite = losses.filter(Number.isFinite);
  if (finite.length === 0) return [];
  const width = Math.min(opts.width ?? 60, finite.length);
  const height = opts.height ?? 8;
  const columns = Array.from({ length: width }, (_, c) => {
    const group = finite.slice(Math.floor((c * finite.length) / width), Math.floor(((c + 1) * finite.length) / width));
    return group.reduce((s, x) => s + x, 0) / group.length;
  });
  // The axis starts just below the lowest column, so the fall fills the chart rather than its top rows.
  const high = Math.max(...columns);
  const low = Math.min(...columns);
  const floor = Math.max(0, low - (high - low) * 0.1);
  const span = high - floor || 1;
  const eighths = columns.map((v) => Math.max(1, Math.round(((v - floor) / span) * height * 8)));
  const label = (x: number) => x.toFixed(2);
  const pad = Math.max(label(high).length, label(floor).length);
  const rows: string[] = [];
  for (let r = height - 1; r >= 0; r--) {
    const bars = eighths.map((e) => EIGHTHS[Math.min(8, Math.max(0, e - r * 8))]).join("");
    const axis = r === height - 1 ? label(high) : r === 0 ? label(floor) : "";
    rows.push(`${axis.padStart(pad)} ┤${bars}`);
  }
  rows.push(`${" ".repeat(pad)} └${"─".repeat(width)} step ${losses.length}`);
  return rows;
}
