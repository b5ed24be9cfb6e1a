// PaLM (samples/palm.ts) trained for ten steps against an independent PyTorch PaLM
// (test/reference/palm_torch.py) from one init and the same tokens: every loss within 1e-4 relative,
// with multi-query attention (the preset) and with grouped-query attention (2 KV heads).
import { describe, expect, test } from "vitest";
import palm from "../samples/palm.ts";
import { type InitTensor, compareWithTorch, normalSampler, writeInit } from "./helpers/torch_compare.ts";

const [batch, seq, steps] = [4, 64, 10];

/** PaLM's initialisation (embedding N(0, 1), kernels N(0, 1/fan_in)), drawn here; LayerNorm scales near 1. */
function randomInit(config: typeof palm.presets.small) {
  return (file: string): void => {
    const normal = normalSampler(777);
    const C = config.dim;
    const kv = config.kv_heads * (C / config.heads);
    const dense = (name: string, out: number, inp: number): InitTensor =>
      ({ name, shape: [out, inp], fill: () => normal(1 / Math.sqrt(inp)) });
    const tensors: InitTensor[] = [{ name: "wte.weight", shape: [config.vocab, C], fill: () => normal(1) }];
    for (let l = 0; l < config.layers; l++) {
      const h = `h.${l}`;
      tensors.push(
        { name: `${h}.ln.weight`, shape: [C], fill: () => 1 + normal(0.1) },
        dense(`${h}.attn.q_proj.weight`, C, C),
        dense(`${h}.attn.k_proj.weight`, kv, C),
        dense(`${h}.attn.v_proj.weight`, kv, C),
        dense(`${h}.attn.out_proj.weight`, C, C),
        dense(`${h}.mlp.gate.weight`, 4 * C, C),
        dense(`${h}.mlp.up.weight`, 4 * C, C),
        dense(`${h}.mlp.down.weight`, C, 4 * C),
      );
    }
    tensors.push({ name: "ln_f.weight", shape: [C], fill: () => 1 + normal(0.1) });
    writeInit(file, tensors);
  };
}

function compare(kvHeads: number, gradClip: string) {
  const config = { ...palm.presets.small, kv_heads: kvHeads };
  const losses = compareWithTorch({
    model: "samples/palm.ts", preset: "small", set: [`kv_heads=${kvHeads}`], config, script: "palm_torch.py",
    init: randomInit(config), gradClip, batch, seq, steps,
  });
  // The run must actually train: a comparison of flat losses would prove little.
  expect(losses[steps - 1]).toBeLessThan(losses[0] - 0.5);
}

describe("PaLM small matches PyTorch", () => {
  test("multi-query attention, 10 steps, global-norm clipping at 1.0", () => compare(1, "1.0"));
  test("grouped-query attention (2 KV heads), 10 steps, clipping off", () => compare(2, "0"));
});
