// The fused LM head's tile is a planner decision (plan/strategies/kernel_tiles.ts): the default tile
// unless no plan fits the device budget with it, then the largest smaller tile that fits.
import { describe, expect, test } from "vitest";
import gpt2 from "../../samples/gpt2.ts";
import { compilePlan } from "../../src/driver/compile.ts";
import { DoesNotFitError } from "../../plan/choose.ts";
import type { CompileOptions, Plan } from "../../plan/plan.ts";
import { kernelTiles } from "../../plan/strategies/kernel_tiles.ts";
import { LM_HEAD_COL_UNIT, type LmHeadTile, lmHeadTile, smallerLmHeadTiles } from "../../ir/passes/fuse_lm_head.ts";
import { lmHeadWorkspace } from "../../ir/ops.ts";
import { lmHeadTileText } from "../../src/driver/tile_report.ts";

const tiny = { vocab: 512, seq: 32, layers: 2, dim: 64, heads: 4 };
const opts: CompileOptions = { batch: 4, seq: 32, threads: 2, clip: true, checkpoint: "none" };
const plan = (config: typeof tiny, deviceMemory?: number): Plan =>
  compilePlan(gpt2, "samples/gpt2.ts", config, {
    ...opts,
    ...(deviceMemory !== undefined && { checkpoint: "auto", deviceMemory }),
  });
const tileOf = (p: Plan): LmHeadTile => {
  const head = p.train.graph.nodes.find((n) => n.op === "linear_cross_entropy")!;
  return { rows: head.attrs.rows, cols: head.attrs.cols };
};

describe("smaller LM-head tiles", () => {
  test("are whole column units, each smaller than the one before, all rows kept", () => {
    for (const [N, V] of [
      [128, 512],
      [1024, 50257],
      [4, 7],
    ]) {
      const tiles = smallerLmHeadTiles(N, V);
      let last = lmHeadWorkspace(lmHeadTile(N, V));
      for (const t of tiles) {
        expect(t.cols % LM_HEAD_COL_UNIT === 0 || t.cols === V).toBe(true);
        expect(t.rows).toBe(lmHeadTile(N, V).rows);
        expect(lmHeadWorkspace(t)).toBeLessThan(last);
        last = lmHeadWorkspace(t);
      }
    }
    expect(smallerLmHeadTiles(128, 512)).toEqual([{ rows: 128, cols: 256 }]);
  });
});

describe("the tile search", () => {
  const refuse = (least: number) => new DoesNotFitError(() => "does not fit", "device", { arenaBytes: least } as never);
  const tiles = [
    { rows: 8, cols: 256 },
    { rows: 8, cols: 128 },
  ];
  test("never plans a smaller tile when the default fits", () => {
    const asked: (LmHeadTile | undefined)[] = [];
    const got = kernelTiles(
      (t) => (asked.push(t), t ?? "default"),
      tiles,
      () => 1000,
      10,
    );
    expect(got).toBe("default");
    expect(asked).toEqual([undefined]);
  });
  test("takes the largest smaller tile that fits, and refuses with the least memory of any tile", () => {
    const fitsFrom = (cols: number) => (t?: LmHeadTile) => {
      if (t === undefined || t.cols > cols) throw refuse(t === undefined ? 100 : 50 + t.cols / 128);
      return t;
    };
    expect(kernelTiles(fitsFrom(256), tiles, () => 1000, 10)).toEqual(tiles[0]);
    expect(kernelTiles(fitsFrom(128), tiles, () => 1000, 10)).toEqual(tiles[1]);
    expect(() => kernelTiles(fitsFrom(0), tiles, () => 1000, 10)).toThrow(expect.objectContaining({ least: { arenaBytes: 51 } }));
  });
});

describe("the tiny GPT under a device budget", () => {
  test("fits in 30% of its resident peak, with the default tile", () => {
    const resident = plan(tiny);
    const budget = Math.floor(resident.arenaBytes * 0.3);
    const p = plan(tiny, budget);
    expect(p.arenaBytes).toBeLessThanOrEqual(budget);
    expect(tileOf(p)).toEqual(lmHeadTile(128, 512));
  });

  test("with a large vocabulary, plans a smaller tile only where the default does not fit", () => {
    const wide = { ...tiny, vocab: 50257 };
    const resident = plan(wide);
    expect(tileOf(resident)).toEqual(lmHeadTile(128, 50257));
    // 17 MB: the default tile's 16 MiB workspace leaves too little; a smaller tile fits.
    const tight = plan(wide, 17_000_000);
    expect(tight.arenaBytes).toBeLessThanOrEqual(17_000_000);
    expect(tileOf(tight).cols).toBeLessThan(lmHeadTile(128, 50257).cols);
    const roomy = plan(wide, 40_000_000);
    expect(tileOf(roomy)).toEqual(lmHeadTile(128, 50257));
    // `stow plan` names the tile, and says when it is not the default.
    const cols = tileOf(tight).cols;
    expect(lmHeadTileText(tight)).toEqual([expect.stringMatching(new RegExp(`tile 128 x ${cols} .*smaller than the default 128 x 32768`))]);
    expect(lmHeadTileText(roomy)).toEqual([expect.stringMatching(/tile 128 x 32768 .*: the default$/)]);
    expect(lmHeadTileText(plan({ ...tiny, vocab: 512 }))).toHaveLength(1);
  });
});
