// The declared pass pipeline (plan/pipeline.ts): its stages are the ones `stow ir --after` offers, a
// prefix is run once per distinct value of the settings it reads, and a pass that breaks the IR's
// invariants is caught at that pass.
import { describe, expect, test } from "vitest";
import gpt2 from "../../samples/gpt2.ts";
import { NO_MOVES, PIPELINE, type PassSettings, Pipeline, STAGE_NAMES, runPass } from "../../plan/pipeline.ts";
import { buildModel, traceProgram } from "../../src/driver/trace_program.ts";

const config = { vocab: 64, seq: 16, layers: 2, dim: 32, heads: 2 };
const traced = traceProgram(buildModel(gpt2, config), config, { batch: 2, seq: 16, kind: "train" });
const settings: PassSettings = { ranks: 1, clip: true, mode: "none", regions: 0, moves: NO_MOVES };

describe("the pass pipeline", () => {
  test("runs every pass in the declared order, after the traced graph", () => {
    const stages = new Pipeline(traced).stages("offload", settings);
    expect(stages.map((s) => s.name)).toEqual(STAGE_NAMES);
    expect(stages[0].graph).toBe(traced);
    expect(stages.at(-1)!.graph.nodes.some((n) => n.op === "adamw")).toBe(true);
  });

  test("shares the passes before recompute between checkpoint modes, and not those after", () => {
    const pipeline = new Pipeline(traced);
    const none = pipeline.stages("early-update", settings);
    const blocks = pipeline.stages("early-update", { ...settings, mode: "blocks", regions: 2 });
    const at = (stages: typeof none, name: string) => stages.find((s) => s.name === name)!.graph;
    expect(at(blocks, "autodiff")).toBe(at(none, "autodiff"));
    expect(at(blocks, "recompute")).not.toBe(at(none, "recompute"));
    expect(at(blocks, "recompute").nodes.length).toBeGreaterThan(at(none, "recompute").nodes.length);
    // The same settings again: every kept graph is the one made before.
    expect(pipeline.stages("early-update", settings).map((s) => s.graph)).toEqual(none.map((s) => s.graph));
  });

  test("a pass whose graph breaks an invariant is named when verifying", () => {
    const broken = { name: "drop-first", reads: () => "", run: (g: typeof traced) => ({ ...g, nodes: g.nodes.slice(1) }) };
    expect(() => runPass(broken, traced, settings, true)).toThrow(
      /the graph after pass drop-first is malformed: verify: .* used before it is defined/,
    );
    expect(runPass(broken, traced, settings, false).nodes).toHaveLength(traced.nodes.length - 1);
    // Each declared pass keeps the invariants on a real model.
    let g = traced;
    for (const pass of PIPELINE) g = runPass(pass, g, settings, true);
  });
});
