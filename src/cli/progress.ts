// Training progress: one line rewritten in place on a terminal, or plain lines every few steps when the
// output goes to a file or a pipe (where carriage returns would leave a mess in the log).
import { formatBytes } from "../../base/units.ts";

export interface StepStats {
  /** Steps completed so far, 1-based. */
  step: number;
  loss?: number;
  tokensPerSecond?: number;
  /** Device memory in use (the arena's high-water mark), in bytes. */
  deviceBytes?: number;
}

export interface ProgressOptions {
  total: number;
  isTTY?: boolean;
  write?: (text: string) => void;
  /** Without a TTY, print a line every this many steps (and always the last). */
  every?: number;
  /** Seconds on a monotonic clock; tests replace it. */
  now?: () => number;
  /** Terminal width; the line is cut to fit so that \r rewrites one line, not a wrapped pair. */
  columns?: number;
}

export interface Progress {
  update(stats: StepStats): void;
  /** Finishes the output: ends the live line, or prints the last state if it was not printed yet. */
  done(): void;
}

const BAR_WIDTH = 24;
// Redrawing on every step would cost more than a small model's step; ten frames a second reads as live.
const REDRAW_INTERVAL_S = 0.1;

export function createProgress(options: ProgressOptions): Progress {
  const total = options.total;
  const isTTY = options.isTTY ?? Boolean(process.stdout.isTTY);
  const write = options.write ?? ((text: string) => void process.stdout.write(text));
  const every = options.every ?? Math.max(1, Math.ceil(total / 20));
  const now = options.now ?? (() => performance.now() / 1000);
  const columns = options.columns ?? process.stdout.columns;
  const start = now();
  let latest: StepStats | undefined;
  let printed: StepStats | undefined;
  let lastDraw = -Infinity;

  const line = (stats: StepStats, withBar: boolean) => formatLine(stats, total, now() - start, withBar);

  const draw = (stats: StepStats) => {
    let text = line(stats, true);
    if (columns && text.length > columns - 1) text = text.slice(0, columns - 1);
    write(`\r${text}\x1b[K`); // \x1b[K clears what a longer previous line left behind
    lastDraw = now();
    printed = stats;
  };

  return {
    update(stats) {
      latest = stats;
      if (isTTY) {
        if (stats.step >= total || now() - lastDraw >= REDRAW_INTERVAL_S) draw(stats);
      } else if (stats.step % every === 0 || stats.step >= total) {
        write(`${line(stats, false)}\n`);
        printed = stats;
      }
    },
    done() {
      if (isTTY) {
        if (latest && printed !== latest) draw(latest);
        if (printed) write("\n");
      } else if (latest && printed !== latest) {
        write(`${line(latest, false)}\n`);
      }
    },
  };
}

function formatLine(stats: StepStats, total: number, elapsed: number, withBar: boolean): string {
  const width = String(total).length;
  const parts = [`step ${String(stats.step).padStart(width)}/${total}`];
  if (withBar) parts.push(bar(stats.step / total));
  if (stats.loss !== undefined) parts.push(`loss ${stats.loss.toFixed(4)}`);
  if (stats.tokensPerSecond !== undefined) parts.push(`${formatCount(stats.tokensPerSecond)} tok/s`);
  if (stats.deviceBytes !== undefined) parts.push(`mem ${formatBytes(stats.deviceBytes)}`);
  const remaining = stats.step > 0 ? (elapsed / stats.step) * (total - stats.step) : NaN;
  parts.push(`elapsed ${formatDuration(elapsed)}`, `eta ${formatDuration(remaining)}`);
  return parts.join("  ");
}

function bar(fraction: number): string {
  const filled = Math.round(Math.min(1, Math.max(0, fraction)) * BAR_WIDTH);
  return `[${"#".repeat(filled)}${".".repeat(BAR_WIDTH - filled)}]`;
}

/** Seconds as 4.2s, 42s, 3m07s, 2h05m09s; "?" when unknown (an ETA before the first step). */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  if (seconds < 9.95) return `${seconds.toFixed(1)}s`; // 9.96 would print as "10.0s"; it belongs below
  const whole = Math.round(seconds);
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = whole % 60;
  const two = (x: number) => String(x).padStart(2, "0");
  if (h > 0) return `${h}h${two(m)}m${two(s)}s`;
  if (m > 0) return `${m}m${two(s)}s`;
  return `${s}s`;
}

/** Rates with an SI suffix: 950, 12.3k, 4.56M. */
function formatCount(n: number): string {
  if (n < 1000) return n.toFixed(0);
  if (n < 1e6) return `${(n / 1e3).toFixed(1)}k`;
  return `${(n / 1e6).toFixed(2)}M`;
}
