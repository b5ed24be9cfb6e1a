// `stow plan --html`: one self-contained page whose SVG chart headless Chromium (Debian's chromium)
// really draws: the test reads back the screenshot's pixels.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, test } from "vitest";
import { countColor, readPng } from "./helpers/png.ts";
import { stow } from "./helpers/run.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "stow-html-"));

function chromium(args: string[]) {
  const profile = mkdtempSync(path.join(os.tmpdir(), "stow-chromium-"));
  return spawnSync("chromium", ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", `--user-data-dir=${profile}`, ...args],
  { encoding: "utf8", timeout: 120_000, maxBuffer: 64 << 20 });
}

describe("stow plan --html", () => {
  test("writes a self-contained page that Chromium renders with the memory chart", () => {
    const file = path.join(dir, "plan.html");
    const r = stow(["plan", "samples/gpt2.ts", "--batch", "4", "--seq", "64", "--device-memory", "100MiB", "--checkpoint", "none", "--html", file]);
    expect(r.status, r.stderr).toBe(0);
    const html = readFileSync(file, "utf8");
    expect(html).not.toMatch(/<script|<link|src="http/); // nothing to fetch, nothing to run
    expect(html).toContain("model data on the host");

    const dom = chromium(["--dump-dom", `file://${file}`]);
    expect(dom.status).toBe(0);
    expect(dom.stdout).toContain('<svg id="timeline"');
    expect(dom.stdout.match(/<path class="area"/g)?.length).toBe(5);
    expect(dom.stdout.match(/<line class="transfer"/g)?.length).toBeGreaterThan(10);

    const png = path.join(dir, "plan.png");
    const shot = chromium(["--window-size=1100,1000", `--screenshot=${png}`, `file://${file}`]);
    expect(shot.status).toBe(0);
    const img = readPng(png);
    expect([img.width, img.height]).toEqual([1100, 1000]);
    // The activations area (#e15759) and the parameter copies (#4e79a7) cover real parts of the chart,
    // beyond their legend swatches (12 x 12 pixels each).
    expect(countColor(img, "#e15759")).toBeGreaterThan(2000);
    expect(countColor(img, "#4e79a7")).toBeGreaterThan(500);
  });
});
