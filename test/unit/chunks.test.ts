// Chunks of offloaded model data: parameters packed in the order the forward first reads them, never
// split, each chunk one contiguous host range; the capacity searched for the least waste or given.
import { expectSettingError } from "../helpers/expect_error.ts";
import { describe, expect, it } from "vitest";
import { parseGraph } from "../../ir/parser.ts";
import { layoutChunks, visitOrder } from "../../ir/passes/chunks.ts";
import { persistentLayout } from "../../ir/passes/memory_plan.ts";
import { UserError } from "../../base/errors.ts";

// Four parameters of 64, 192, 400 and 32 bytes (448 and 64 once aligned to 64), read in the order c, a, d, b.
const program = `# forward
  %0 = param() {name="a", shape=[16]} : f32[16]
  %1 = param() {name="b", shape=[48]} : f32[48]
  %2 = param() {name="c", shape=[100]} : f32[100]
  %3 = param() {name="d", shape=[8]} : f32[8]
  %4 = input() {name="x", shape=[100], dtype="f32"} : f32[100]
  %5 = mul(%4, %2) : f32[100]
  %6 = reshape(%5) {shape=[25,4]} : f32[25,4]
  %7 = reshape(%0) {shape=[4,4]} : f32[4,4]
  %8 = matmul(%6, %7) {ta=false, tb=false} : f32[25,4]
  %9 = reshape(%3) {shape=[2,4]} : f32[2,4]
  %10 = matmul(%8, %9) {ta=false, tb=true} : f32[25,2]
  %11 = reshape(%1) {shape=[2,24]} : f32[2,24]
  %12 = matmul(%10, %11) {ta=false, tb=false} : f32[25,24]
# results: x=%4, y=%12
`;

describe("chunk layout", () => {
  const g = parseGraph(program);

  it("visits parameters in the order the forward first reads them, with aligned sizes", () => {
    expect(visitOrder(g)).toEqual([
      { name: "c", bytes: 448, part: false },
      { name: "a", bytes: 64, part: false },
      { name: "d", bytes: 64, part: false },
      { name: "b", bytes: 192, part: false },
    ]);
  });

  it("packs them in that order into chunks of at most the given capacity, never splitting one", () => {
    const layout = layoutChunks(g, 512);
    expect(layout.chosen).toBe("given");
    expect(layout.chunks.map((c) => c.params)).toEqual([
      ["c", "a"],
      ["d", "b"],
    ]);
    expect(layout.chunks.map((c) => c.bytes)).toEqual([512, 256]);
    expect([...layout.chunks[1].offsets]).toEqual([
      ["d", 0],
      ["b", 64],
    ]);
    expect(layout.wasteBytes).toBe(0 + 256);
    expect(layout.chunkOf.get("b")).toBe(1);
  });

  it("keeps tensor-parallel parts and whole parameters in separate chunks when asked, each kind in visit order", () => {
    // c and d as if the shard pass had cut them (ZeRO 2 and 3 under --tp sum the norm by chunk shard).
    const cut = new Set(["c", "d"]);
    const shard = { axis: 0, groups: 1, full: 0, ranks: 2 };
    const withParts = { ...g, params: g.params.map((p) => (cut.has(p.name) ? { ...p, shard: { ...shard, full: 2 * p.shape[0] } } : p)) };
    expect(layoutChunks(withParts, 512).chunks.map((c) => c.params)).toEqual([
      ["c", "a"],
      ["d", "b"],
    ]);
    const apart = layoutChunks(withParts, 512, "given", true);
    expect(apart.chunks.map((c) => c.params)).toEqual([
      ["c", "d"],
      ["a", "b"],
    ]);
    expect([...apart.chunks[1].offsets]).toEqual([
      ["a", 0],
      ["b", 64],
    ]);
  });

  it("refuses a capacity below the largest parameter, naming it", () => {
    expect(() => layoutChunks(g, 256)).toThrow(UserError);
    expectSettingError(
      () => layoutChunks(g, 256),
      /--chunk-size 256 B is smaller than the largest tensor that must stay whole: c needs 448 B \(448 bytes\)/,
    );
  });

  it("searches the capacity that wastes least: here all 768 bytes in one chunk", () => {
    const layout = layoutChunks(g);
    expect(layout.chosen).toBe("searched");
    expect(layout.capacity).toBe(768);
    expect(layout.wasteBytes).toBe(0);
    expect(layout.chunks.map((c) => c.params)).toEqual([["c", "a", "d", "b"]]);
  });

  it("lays each offloaded chunk out as one contiguous host range; resident chunks stay in the arena", () => {
    const chunks = layoutChunks(g, 512);
    const p = persistentLayout(g, true, { chunks, resident: new Set([1]) });
    // Chunk 0 (c, a) on the host, parameters first and contiguous; chunk 1 (d, b) at the bottom of the arena.
    expect(p.chunkRange.get(0)).toEqual([0, 512]);
    expect(p.offsets.get("c")).toBe(0);
    expect(p.offsets.get("a")).toBe(448);
    expect(p.chunkRange.has(1)).toBe(false);
    expect([...p.onHost].sort()).toEqual(["a", "c", "opt.m.a", "opt.m.c", "opt.v.a", "opt.v.c"]);
    // Arena: b and d (state_dict order), then their moments.
    expect(p.offsets.get("b")).toBe(0);
    expect(p.offsets.get("d")).toBe(192);
    expect(p.paramBytes).toBe(256);
    expect(p.optStateBytes).toBe(512);
    expect(p.hostBytes).toBe(3 * 512);
  });
});
