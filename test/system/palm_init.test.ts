// PaLM small's initialisation against the paper (Chowdhery et al., 2022, section 5, "Weight
// initialization"): kernels N(0, 1/fan_in), the shared embedding N(0, 1) (stored divided by sqrt(dim), as
// samples/palm.ts explains), LayerNorm scales 1, no biases.
// The init is exported with `stow train --steps 0` and measured here from the file. (The logits' 1/sqrt(d)
// scale is checked by the PyTorch comparison of test/system/palm.test.ts, whose reference applies it itself.)
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { expect, test } from "vitest";
import palm from "../../samples/palm.ts";
import { readSafetensors } from "../../src/checkpoint/safetensors.ts";
import { writeTokenFile } from "../../src/data/token_file.ts";
import { stow } from "../helpers/run.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "stow-palm-init-"));

function moments(data: ArrayLike<number>): { mean: number; std: number } {
  let sum = 0;
  let squares = 0;
  for (let i = 0; i < data.length; i++) {
    sum += data[i];
    squares += data[i] * data[i];
  }
  const mean = sum / data.length;
  return { mean, std: Math.sqrt(squares / data.length - mean * mean) };
}

test("PaLM small starts from the paper's initialisation", () => {
  const data = path.join(dir, "tokens.bin");
  writeTokenFile(
    data,
    Array.from({ length: 4096 }, (_, i) => (i * 7919) % 50257),
  );
  const init = path.join(dir, "init.safetensors");
  const r = stow(["train", "samples/palm.ts", "--steps", "0", "--data", data, "--save", init, "--no-sample", "--threads", "2"]);
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);

  const { dim, layers } = palm.presets.small;
  const { tensors } = readSafetensors(init);
  expect([...tensors.keys()].filter((n) => n.endsWith(".bias"))).toEqual([]);
  const check = (name: string, std: number) => {
    const values = tensors.get(name)!.data as Float32Array;
    const m = moments(values);
    // Within 5 standard errors of the mean, and 2% of the std (over 6 of its standard errors at 16k values).
    expect(Math.abs(m.mean), name).toBeLessThan((5 * std) / Math.sqrt(values.length));
    expect(m.std / std, name).toBeGreaterThan(0.98);
    expect(m.std / std, name).toBeLessThan(1.02);
  };
  check("wte.weight", 1 / Math.sqrt(dim)); // E = wte sqrt(dim) ~ N(0, 1): LayerNorm is not applied to the embeddings
  for (let l = 0; l < layers; l++) {
    for (const p of ["attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.out_proj", "mlp.gate", "mlp.up"])
      check(`h.${l}.${p}.weight`, 1 / Math.sqrt(dim));
    check(`h.${l}.mlp.down.weight`, 1 / Math.sqrt(4 * dim)); // fan-in 4d
    expect([...(tensors.get(`h.${l}.ln.weight`)!.data as Float32Array)].every((x) => x === 1)).toBe(true);
  }
  expect([...(tensors.get("ln_f.weight")!.data as Float32Array)].every((x) => x === 1)).toBe(true);
});
