// `stow plan --html`: one self-contained page whose SVG chart headless Chromium (Debian's chromium)
// really draws: the test reads back the screenshot's pixels.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, test } from "vitest";
import { countColor, readPng } from "../helpers/png.ts";
import { stow } from "../helpers/run.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "stow-html-"));

function chromium(args: string[]) {
  const profile = mkdtempSync(path.join(os.tmpdir(), "stow-chromium-"));
  return spawnSync(
    "chromium",
    [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--user-data-dir=${profile}`,
      ...args,
    ],
    { encoding: "utf8", timeout: 120_000, maxBuffer: 64 << 20 },
  );
}

describe("stow plan --html", () => {
  test("writes a self-contained page that Chromium renders with the memory chart", () => {
    const file = path.join(dir, "plan.html");
    const flags = [
      "samples/gpt2.ts",
      "--preset",
      "mini",
      "--batch",
      "4",
      "--seq",
      "64",
      "--device-memory",
      "100MiB",
      "--checkpoint",
      "none",
    ];
    const r = stow(["plan", ...flags, "--html", file]);
    expect(r.status, r.stderr).toBe(0);
    const html = readFileSync(file, "utf8");
    expect(html).not.toMatch(/<script|<link|src="http/); // nothing to fetch, nothing to run
    const plan = JSON.parse(stow(["plan", ...flags, "--json"]).stdout);
    const chunks: { placement: string }[] = plan.offload.chunks;
    const onDevice = chunks.filter((c) => c.placement === "device").length;
    expect(onDevice).toBeLessThan(chunks.length);
    expect(html).toContain(
      `${onDevice} of ${chunks.length} chunks of model data on the device, ${chunks.length - onDevice} in host memory`,
    );

    const dom = chromium(["--dump-dom", `file://${file}`]);
    expect(dom.status).toBe(0);
    expect(dom.stdout).toContain('<svg id="timeline"');
    expect(dom.stdout.match(/<path class="area"/g)?.length).toBe(5);
    expect(dom.stdout.match(/<line class="transfer"/g)?.length).toBeGreaterThan(10);
    // The time axis: six ticks from 0 to the predicted step, placed along the node axis in order; labels
    // that would overprint (ticks bunched on one long node) are left off, the first and last never.
    const ticks = [...dom.stdout.matchAll(/<line class="time-tick" x1="([\d.]+)"[^>]*>(?:<\/line>)?\s*<text[^>]*>([^<]*)<\/text>/g)];
    expect(ticks).toHaveLength(6);
    const labels = ticks.map((t) => t[2]);
    expect(labels[0]).toBe("0.00 ms");
    expect(Number(labels[5].replace(" ms", ""))).toBeCloseTo(plan.predicted_step.seconds * 1000, 0);
    expect(labels.filter((l) => l !== "").every((l) => / ms$/.test(l))).toBe(true);
    const xs = ticks.map((t) => Number(t[1]));
    expect(xs).toEqual([...xs].sort((a, b) => a - b));
    expect(xs[5] - xs[0]).toBeGreaterThan(600);

    const png = path.join(dir, "plan.png");
    const shot = chromium(["--window-size=1100,1000", `--screenshot=${png}`, `file://${file}`]);
    expect(shot.status).toBe(0);
    const img = readPng(png);
    expect([img.width, img.height]).toEqual([1100, 1000]);
    // The activations area (#e15759) and the parameter copies (#4e79a7) cover real parts of the chart,
    // beyond their legend swatches (12 x 12 pixels each).
    expect(countColor(img, "#e15759")).toBeGreaterThan(2000);
    expect(countColor(img, "#4e79a7")).toBeGreaterThan(500);
    // The time axis is drawn: a 3-pixel line across the chart's width (870 pixels) and its ticks, at least
    // two rows of it in exactly its colour (antialiasing blends the third).
    expect(countColor(img, "#9c755f")).toBeGreaterThan(1500);
  });

  test("describes the chosen plan: recomputed blocks, moved blocks, where model data lives", () => {
    const file = path.join(dir, "moved.html");
    const r = stow([
      "plan",
      "samples/gpt2.ts",
      "--preset",
      "mini",
      "--set",
      "vocab=512",
      "--batch",
      "4",
      "--seq",
      "64",
      "--move-activations",
      "2",
      "--checkpoint",
      "blocks:1",
      "--html",
      file,
    ]);
    expect(r.status, r.stderr).toBe(0);
    const dom = chromium(["--dump-dom", `file://${file}`]).stdout;
    const cell = (id: string) => new RegExp(`<td id="${id}">([^<]*)</td>`).exec(dom)?.[1];
    expect(cell("checkpoint")).toMatch(
      /^blocks: the backward recomputes 1 of 4 blocks from their inputs \(\d+\.\d% of the step's FLOPs\)$/,
    );
    expect(cell("moved")).toMatch(
      /^blocks 0-1 of 4 keep their saved activations in host memory: [\d.]+ MiB out in the forward and back in the backward/,
    );
    expect(cell("placement")).toMatch(/^all on the device: [\d.]+ MiB of parameters and AdamW states$/);
    expect(cell("predicted")).toMatch(/^[\d.]+ ms \(compute [\d.]+ ms, link busy [\d.]+ ms, compute waits [\d.]+ ms\)$/);
  });
});
