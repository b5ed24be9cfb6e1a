// The stow commands tests run most, with the checks every such run needs: it exits 0 and, for training,
// prints nothing on stderr (warnings there would go unseen by a user's scripts).
import { expect } from "vitest";
import { readMetrics, stow } from "./run.ts";

/** The tiny GPT many system tests run: the GPT-2 sample at vocabulary 512, 2 layers, width 64, 2 heads. */
export const TINY_GPT = ["samples/gpt2.ts", "--set", "vocab=512", "--set", "layers=2", "--set", "dim=64", "--set", "heads=2"];

/** `stow train ARGS --no-sample --metrics FILE` (ARGS name the model and the data); the metrics it wrote. */
export function stowTrain(args: string[], metrics: string, env: Record<string, string> = {}): Record<string, number>[] {
  const r = stow(["train", ...args, "--no-sample", "--metrics", metrics], env);
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  return readMetrics(metrics);
}

/** `stow plan ARGS --json`, parsed. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the plan's JSON, read field by field
export function stowPlanJson(args: string[]): any {
  const r = stow(["plan", ...args, "--json"]);
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

/** Each of `ours` within `tolerance`, relative, of the reference value at its step. */
export function expectRelativelyClose(ours: number[], reference: number[], what: string, tolerance: number): void {
  expect(ours).toHaveLength(reference.length);
  for (let i = 0; i < reference.length; i++) {
    const rel = Math.abs(ours[i] - reference[i]) / Math.abs(reference[i]);
    expect(rel, `${what}, step ${i + 1}: ${ours[i]} vs ${reference[i]}`).toBeLessThanOrEqual(tolerance);
  }
}
