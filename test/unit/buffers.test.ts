// Buffers through the passes (test/fixtures/models/buffer_gpt.ts): autodiff gives them no gradient and
// does not ask the loss to depend on them, the optimizer gives them no moments, the persistent layout
// stores them and nothing more, and the parameter count leaves them out, as PyTorch's parameters().
// Training, checkpoints and offload are test/system/buffers.test.ts's.
import { describe, expect, test } from "vitest";
import { adamwPass } from "../../ir/passes/adamw.ts";
import { autodiff } from "../../ir/passes/autodiff.ts";
import { persistentLayout } from "../../ir/passes/memory_plan.ts";
import { trainedParams } from "../../ir/types.ts";
import { buildModel, traceProgram } from "../../src/driver/trace_program.ts";

describe("buffers in the passes", () => {
  test("no gradient, no moments, stored once; the unused one is no error", async () => {
    const { default: bufferGpt } = await import("../fixtures/models/buffer_gpt.ts");
    const config = { vocab: 11, seq: 8, dim: 4 };
    const forward = traceProgram(buildModel(bufferGpt, config), config, { batch: 2, seq: 5, kind: "train" });
    expect(forward.params.filter((p) => p.buffer).map((p) => p.name)).toEqual(["positions", "scale", "unused"]);
    expect(trainedParams(forward).map((p) => p.name)).toEqual(["wte.weight", "norm.weight", "head.weight"]);
    expect(forward.params.filter((p) => p.buffer).every((p) => !p.decay)).toBe(true);

    const g = adamwPass(autodiff(forward), { clip: true });
    expect(Object.keys(g.grads)).toEqual(["wte.weight", "norm.weight", "head.weight"]);
    const states = g.nodes.filter((n) => n.op === "opt_state").map((n) => n.attrs.name as string);
    expect(states.filter((s) => /positions|scale|unused/.test(s))).toEqual([]);
    expect(g.nodes.filter((n) => n.op === "adamw")).toHaveLength(3);

    const layout = persistentLayout(g, true);
    expect([...layout.offsets.keys()].filter((k) => /positions|scale|unused/.test(k))).toEqual(["positions", "scale", "unused"]);
    expect([...layout.offsets.keys()].filter((k) => k.startsWith("opt."))).toEqual(
      ["m", "v"].flatMap((m) => ["wte.weight", "norm.weight", "head.weight"].map((p) => `opt.${m}.${p}`)),
    );
  });
});
