// Chrome traces of one step (src/report/trace.ts): `stow plan --trace` (the cost model's prediction) and
// `stow train --trace` (the profiled step, from runtime/core/profile.cpp and the transfer engine's job spans).
// A small GPT with its model data offloaded, so every stream but the collectives has work: the structure
// of each file, and that prediction and measurement list the same events in the same order.
import { TINY_GPT } from "../helpers/stow_commands.ts";
import { mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, test } from "vitest";
import { makeMarkovCorpus } from "../../src/data/synthetic.ts";
import { writeTokenFile } from "../../src/data/token_file.ts";
import { stow } from "../helpers/run.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "stow-trace-"));
const data = path.join(dir, "markov.bin");
// About 60% of the resident peak (2.4 MiB): every chunk of model data lives in host memory.
const model = [...TINY_GPT, "--set", "seq=32", "--batch", "2", "--threads", "2", "--device-memory", "1500000"];
const TRACKS = ["compute", "host→device", "device→host", "host AdamW", "collectives"];

interface TraceEvent {
  ph: string;
  pid: number;
  tid: number;
  name: string;
  cat?: string;
  ts?: number;
  dur?: number;
  args: Record<string, unknown>;
}

const read = (file: string): TraceEvent[] => JSON.parse(readFileSync(file, "utf8")).traceEvents;
const spans = (events: TraceEvent[]) => events.filter((e) => e.ph === "X");

beforeAll(() => writeTokenFile(data, makeMarkovCorpus({ vocab: 512, k: 4, length: 5_000, seed: 1 }).tokens));

function checkStructure(events: TraceEvent[]): void {
  // A named track per stream, thread ids 1..5 in TRACKS order.
  const names = events.filter((e) => e.ph === "M" && e.name === "thread_name").map((e) => [e.tid, e.args.name]);
  expect(names).toEqual(TRACKS.map((t, i) => [i + 1, t]));
  const x = spans(events);
  expect(x.length).toBeGreaterThan(100);
  for (const e of x) {
    expect(e.pid).toBe(1);
    expect(TRACKS[e.tid - 1]).toBe(e.cat);
    expect(e.ts).toBeGreaterThanOrEqual(0);
    expect(e.dur).toBeGreaterThanOrEqual(0);
    // Named by op and model line (the full location, bytes and FLOPs as arguments); only the step's
    // gradient norm comes from no line of the model.
    if (e.args.op === "grad_norm") {
      expect([e.name, e.args.line]).toEqual(["grad_norm", null]);
    } else {
      expect(e.name).toMatch(/^[a-z_0-9]+ samples\/gpt2\.ts:\d+$/);
      expect(e.name.startsWith(`${e.args.op} `)).toBe(true);
      expect(e.args.line).toMatch(new RegExp(`^${e.name.split(" ")[1].replace(/[./]/g, "\\$&")}:\\d+$`));
    }
    expect(e.args.bytes as number).toBeGreaterThan(0);
    expect(typeof e.args.flops).toBe("number");
  }
  expect(x.filter((e) => e.args.op === "matmul").every((e) => (e.args.flops as number) > 0)).toBe(true);
  // Offloaded model data: copies each way and AdamW on the host.
  for (const track of ["compute", "host→device", "device→host", "host AdamW"]) expect(x.some((e) => e.cat === track)).toBe(true);
  expect(x.filter((e) => e.cat === "host→device").every((e) => e.args.op === "chunk_h2d")).toBe(true);
  expect(x.filter((e) => e.cat === "host AdamW").every((e) => e.args.op === "adamw")).toBe(true);
  // One compute stream: its events follow each other without overlapping.
  const compute = x.filter((e) => e.cat === "compute");
  for (let i = 1; i < compute.length; i++) expect(compute[i].ts!).toBeGreaterThanOrEqual(compute[i - 1].ts! + compute[i - 1].dur! - 0.002);
}

describe("Chrome traces of one step", () => {
  const predicted = path.join(dir, "predicted.json");
  const measured = path.join(dir, "measured.json");

  test("stow plan --trace writes the predicted step", () => {
    const r = stow(["plan", ...model, "--trace", predicted]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(`wrote ${predicted}`);
    checkStructure(read(predicted));
  });

  test("stow train --trace writes the profiled step, with the predicted trace's events in the same order", () => {
    const r = stow(["train", ...model, "--data", data, "--steps", "3", "--no-sample", "--trace", measured]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`trace of step 3 as measured: ${measured.replace(/[./]/g, "\\$&")}`));
    const events = read(measured);
    checkStructure(events);
    const key = (e: TraceEvent) => [e.name, e.cat, e.args.node];
    expect(spans(events).map(key)).toEqual(spans(read(predicted)).map(key));
    // Measured, not predicted: the copies took time on their own threads.
    expect(
      spans(events)
        .filter((e) => e.cat === "host→device")
        .every((e) => e.dur! > 0),
    ).toBe(true);
  });

  test("--trace without profiled steps, or on a run too short to reach them, is refused naming the flag", () => {
    const off = stow(["train", ...model, "--data", data, "--steps", "3", "--no-sample", "--profile-steps", "0", "--trace", measured]);
    expect(off.status).toBe(2);
    expect(off.stderr).toMatch(/^stow: --trace: the measured trace comes from the profiled steps/m);
    const short = stow(["train", ...model, "--data", data, "--steps", "2", "--no-sample", "--trace", measured]);
    expect(short.status).toBe(2);
    expect(short.stderr).toMatch(/^stow: --trace: the run takes 2 steps, and the trace is of step 3/m);
  });
});
