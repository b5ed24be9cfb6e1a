// The inference program returns one position's logits, selected before the LM head. Checked with the
// float64 interpreter against the logits the training program computes for every position.
import { describe, expect, it } from "vitest";
import { interpret } from "../../ir/interpret.ts";
import { numel } from "../../ir/types.ts";
import gpt2 from "../../samples/gpt2.ts";
import palm from "../../samples/palm.ts";
import type { ModelConfig, ModelDefinition } from "../../src/dsl/model.ts";
import { buildModel, traceProgram } from "../../src/driver/trace_program.ts";
import { mulberry32 } from "../../src/util/random.ts";

function check(def: ModelDefinition, config: ModelConfig) {
  const model = buildModel(def, config);
  const T = config.seq;
  const train = traceProgram(model, config, { batch: 1, seq: T, kind: "train" });
  const infer = traceProgram(model, config, { batch: 1, seq: T, kind: "infer" });
  const random = mulberry32(11);
  const params = new Map(train.params.map((p) => [p.name, Float64Array.from({ length: numel(p.shape) }, () => random() - 0.5)]));
  const tokens = Int32Array.from({ length: T }, () => Math.floor(random() * config.vocab));
  const all = interpret(train, { params, inputs: { tokens, targets: tokens } }).get(train.named.loss.producer.inputs[0].id)!;
  expect(infer.named.logits.shape).toEqual([1, config.vocab]);
  // No node of the inference program holds logits for every position.
  const rowsOfLogits = (n: (typeof infer.nodes)[number]) =>
    n.outputs.some((v) => v.shape[v.shape.length - 1] === config.vocab && numel(v.shape) >= T * config.vocab);
  expect(infer.nodes.some(rowsOfLogits)).toBe(false);
  expect(train.nodes.some(rowsOfLogits)).toBe(true); // the check above can see them
  for (const position of [0, 3, T - 1]) {
    const row = interpret(infer, { params, inputs: { tokens, position: Int32Array.of(position) } }).get(infer.named.logits.id)!;
    const expected = all.subarray(position * config.vocab, (position + 1) * config.vocab);
    row.forEach((x, v) => expect(x).toBeCloseTo(expected[v], 12));
  }
}

describe("inference at one position", () => {
  it("gives GPT-2's logits at that position, without computing the others", () => {
    check(gpt2, { vocab: 37, seq: 8, layers: 2, dim: 8, heads: 2 });
  });
  it("gives PaLM's logits at that position, without computing the others", () => {
    check(palm, { vocab: 37, seq: 8, layers: 2, dim: 8, heads: 4, kv_heads: 1 });
  });
});
