// The GPT-2 sample's presets have the parameter counts of the models they name: the count written out
// from the architecture (token and position embeddings, per block two LayerNorms, the attention's and the
// MLP's weights and biases, the final LayerNorm; the LM head tied to the token embedding), against the
// modules the sample builds.
import { describe, expect, test } from "vitest";
import { loadModel } from "../../src/load/load_model.ts";
import { resolveModel } from "../../src/driver/resolve.ts";
import { paramCount } from "../../src/driver/family.ts";

/** GPT-2's parameters at vocabulary V, context T, L layers of width C. */
function gpt2Params(V: number, T: number, L: number, C: number): number {
  const block = 2 * 2 * C + (3 * C * C + 3 * C) + (C * C + C) + (4 * C * C + 4 * C) + (4 * C * C + C);
  return V * C + T * C + L * block + 2 * C;
}

describe("samples/gpt2.ts presets", () => {
  test("124M is nanoGPT's 124,439,808 and 175B GPT-3's shape (96 x 12288, context 2048): 174.6B", async () => {
    const loaded = await loadModel("samples/gpt2.ts");
    const count = (preset: string) => paramCount(resolveModel(loaded, { preset }));
    expect(count("124M")).toBe(124_439_808);
    expect(count("124M")).toBe(gpt2Params(50257, 1024, 12, 768));
    expect(count("175B")).toBe(gpt2Params(50257, 2048, 96, 12288));
    expect(count("175B")).toBeGreaterThan(174e9);
  });
});
