// Whole training steps against an independent PyTorch GPT-2 (test/reference/gpt2_torch.py): the same
// safetensors init, the same tokens, the same AdamW settings; ten losses must agree to 1e-4 relative.
import { describe, expect, test } from "vitest";
import gpt2 from "../../samples/gpt2.ts";
import { type InitTensor, compareWithTorch, normalSampler, writeInit } from "../helpers/torch_compare.ts";

const config = gpt2.presets.mini;
const [batch, seq, steps] = [4, 64, 10];

/** Parameters drawn here, independently of Stowage's own initialiser, in nanoGPT's layout. */
function randomInit(file: string): void {
  const normal = normalSampler();
  const C = config.dim;
  const tensors: InitTensor[] = [
    { name: "transformer.wte.weight", shape: [config.vocab, C], fill: () => normal(0.02) },
    { name: "transformer.wpe.weight", shape: [config.seq, C], fill: () => normal(0.02) },
  ];
  for (let l = 0; l < config.layers; l++) {
    const h = `transformer.h.${l}`;
    tensors.push(
      { name: `${h}.ln_1.weight`, shape: [C], fill: () => 1 + normal(0.1) },
      { name: `${h}.ln_1.bias`, shape: [C], fill: () => normal(0.1) },
      { name: `${h}.attn.c_attn.weight`, shape: [3 * C, C], fill: () => normal(0.02) },
      { name: `${h}.attn.c_attn.bias`, shape: [3 * C], fill: () => normal(0.02) },
      { name: `${h}.attn.c_proj.weight`, shape: [C, C], fill: () => normal(0.02) },
      { name: `${h}.attn.c_proj.bias`, shape: [C], fill: () => normal(0.02) },
      { name: `${h}.ln_2.weight`, shape: [C], fill: () => 1 + normal(0.1) },
      { name: `${h}.ln_2.bias`, shape: [C], fill: () => normal(0.1) },
      { name: `${h}.mlp.c_fc.weight`, shape: [4 * C, C], fill: () => normal(0.02) },
      { name: `${h}.mlp.c_fc.bias`, shape: [4 * C], fill: () => normal(0.02) },
      { name: `${h}.mlp.c_proj.weight`, shape: [C, 4 * C], fill: () => normal(0.02) },
      { name: `${h}.mlp.c_proj.bias`, shape: [C], fill: () => normal(0.02) },
    );
  }
  tensors.push(
    { name: "transformer.ln_f.weight", shape: [C], fill: () => 1 + normal(0.1) },
    { name: "transformer.ln_f.bias", shape: [C], fill: () => normal(0.1) },
  );
  writeInit(file, tensors);
}

function compare(gradClip: string) {
  const losses = compareWithTorch({
    model: "samples/gpt2.ts",
    preset: "mini",
    config,
    script: "gpt2_torch.py",
    init: randomInit,
    gradClip,
    batch,
    seq,
    steps,
  });
  // The run must actually train: a comparison of flat losses would prove little.
  expect(losses[steps - 1]).toBeLessThan(losses[0] - 0.5);
}

describe("training steps match PyTorch", () => {
  test("gpt2 mini, 10 steps, clipping off", () => compare("0"));
  test("gpt2 mini, 10 steps, global-norm clipping at 1.0", () => compare("1.0"));
});
