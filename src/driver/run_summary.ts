// What a finished `stow train` says last: how far the loss fell, as a number and as a chart, and where its
// checkpoint and metrics are, with the commands that use them.
import { lossChart } from "../cli/loss_chart.ts";

export interface RunFiles {
  checkpoint?: string;
  metrics?: string;
  /** A task model (its own inputs and loss) has no next-token logits: no `stow generate` hint. */
  task?: boolean;
}

/** Mean of the last `n` losses (fewer when the run is shorter). */
export function tailMean(losses: readonly number[], n = 10): number {
  const tail = losses.slice(-n);
  return tail.reduce((s, x) => s + x, 0) / tail.length;
}

export function runSummary(losses: readonly number[], files: RunFiles): string[] {
  const lines: string[] = [];
  if (losses.length > 0) {
    const [first, last] = [losses[0], tailMean(losses)];
    const share = Math.round((100 * last) / first);
    lines.push(
      `loss ${first.toFixed(3)} at step 1 -> ${last.toFixed(3)}, the mean of the last ${Math.min(10, losses.length)} steps ` +
        `(${share}% of the first)`,
      ...lossChart(losses),
    );
  }
  if (files.checkpoint)
    lines.push(
      `checkpoint ${files.checkpoint}  (${files.task ? "" : `sample: stow generate ${files.checkpoint} --prompt TEXT; `}` +
        `train on: stow train ... --resume ${files.checkpoint} --steps N)`,
    );
  if (files.metrics) lines.push(`metrics    ${files.metrics}  (one JSON object a step)`);
  return lines;
}
