// The memory planner: liveness intervals, in-place reuse, and best-fit placement, on graphs stated as
// text with sizes small enough to work out by hand.
import { describe, expect, it } from "vitest";
import { parseGraph } from "../../ir/parser.ts";
import { placeBuffers, placeBuffersWithin } from "../../ir/passes/arena_plan.ts";
import { type LiveBuffer, liveness } from "../../ir/passes/liveness.ts";
import { persistentLayout, planMemory, planMemoryWithin } from "../../ir/passes/memory_plan.ts";

const buf = (key: number, bytes: number, start: number, end: number) =>
  ({ key, bytes, start, end, kind: "activation", node: undefined }) as unknown as LiveBuffer;

describe("best-fit placement", () => {
  it("reuses the space of buffers that are dead, and stacks the ones that overlap", () => {
    // a: 256 B live 0..1, b: 128 B live 2..3 (fits where a was), c: 64 B live 1..2 (overlaps both).
    const { offsets, peak } = placeBuffers([buf(1, 256, 0, 1), buf(2, 128, 2, 3), buf(3, 64, 1, 2)]);
    expect(offsets.get(1)).toBe(0);
    expect(offsets.get(2)).toBe(0);
    expect(offsets.get(3)).toBe(256);
    expect(peak).toBe(256 + 64);
  });

  it("keeps buffers in order of offset past hundreds of them", () => {
    // 300 buffers of 128 B live over [0, 1000] stack from 0; 300 of 64 B, each live at one later
    // position, all go to 0 and so enter the offset order near its front; a last 32 B buffer live
    // throughout must see the whole stack, in order, and go above it.
    const stacked = Array.from({ length: 300 }, (_, i) => buf(i, 128, 0, 1000));
    const later = Array.from({ length: 300 }, (_, i) => buf(300 + i, 64, 1001 + i, 1001 + i));
    const { offsets, peak } = placeBuffers([...stacked, ...later, buf(600, 32, 0, 1400)]);
    expect(stacked.map((b) => offsets.get(b.key))).toEqual(stacked.map((_, i) => 128 * i));
    expect(later.every((b) => offsets.get(b.key) === 0)).toBe(true);
    expect(offsets.get(600)).toBe(300 * 128);
    expect(peak).toBe(300 * 128 + 32);
  });

  it("picks the smallest gap that fits", () => {
    // Live all along: x at 0 (64 B), a hole of 128 B, y (64 B), a hole of 64 B, z. A 64 B buffer in
    // the middle of the program must take the 64 B hole, not the 128 B one.
    const placed = placeBuffers([
      buf(1, 1024, 0, 0),
      buf(2, 64, 0, 9),
      buf(3, 128, 1, 1),
      buf(4, 64, 0, 9),
      buf(5, 64, 2, 2),
      buf(6, 64, 0, 9),
    ]);
    const off = (k: number) => placed.offsets.get(k)!;
    // The 1024 B buffer goes first (largest), at 0; the long-lived 64 B ones stack above it.
    expect(off(1)).toBe(0);
    expect([off(2), off(4), off(6)].sort((a, b) => a - b)).toEqual([1024, 1088, 1152]);
    expect(off(3)).toBe(0); // dead 1024 B region is free at time 1
    expect(off(5)).toBe(0);
  });
});

const program = `# forward
  %0 = param() {name="w", shape=[8,4]} : f32[8,4]
  %1 = input() {name="x", shape=[2,4], dtype="f32"} : f32[2,4]
  %2 = input() {name="t", shape=[2], dtype="i32"} : i32[2]
  %3 = matmul(%1, %0) {ta=false, tb=true} : f32[2,8]
  %4 = gelu(%3) : f32[2,8]
  %5 = cross_entropy(%4, %2) : f32[]
# backward
  %6 = fill() {shape=[], value=1} : f32[]
  %7 = cross_entropy_bwd(%4, %2, %6) : f32[2,8]
  %8 = gelu_bwd(%3, %7) : f32[2,8]
  %9 = matmul(%8, %1) {ta=true, tb=false} : f32[8,4]
# results: x=%1, t=%2, loss=%5
`;

describe("liveness", () => {
  it("puts an output over an input the kernel may overwrite when that input dies there", () => {
    const l = liveness(parseGraph(program), 2);
    // dlogits (%7) takes the storage of the logits (%4), which die at cross_entropy_bwd; gelu_bwd's
    // output (%8) takes dlogits' storage in turn. %3 is still read by gelu_bwd, so nothing takes it before.
    expect(l.storageOf[7]).toBe(4);
    expect(l.storageOf[8]).toBe(4);
    expect(l.storageOf[3]).toBe(3);
    const logits = l.buffers.find((b) => b.key === 4)!;
    expect([logits.start, logits.end]).toEqual([4, 9]); // positions of gelu (%4) and of the matmul reading %8
  });

  it("does not reuse an input that is read later", () => {
    const g = parseGraph(
      program.replace("%9 = matmul(%8, %1)", "%9 = matmul(%8, %4)").replace("f32[8,4]\n# results", "f32[8,8]\n# results"),
    );
    const l = liveness(g, 2);
    expect(l.storageOf[7]).toBe(7);
  });

  it("predicts parameters at the bottom and temporaries above them", () => {
    const g = parseGraph(program);
    const persistent = persistentLayout(g, false);
    const plan = planMemory(g, persistent, 2);
    expect(persistent.bytes).toBe(128); // w: 32 floats
    expect(plan.valueOffset.get(0)).toBe(0);
    for (const b of plan.buffers) expect(b.offset).toBeGreaterThanOrEqual(128);
    expect(plan.peak).toBe(Math.max(...plan.buffers.map((b) => b.offset + b.bytes)));
  });
});

// A plan search gives a probe up as soon as it cannot fit: the verdict must be the full plan's.
describe("placement within a limit", () => {
  // Worked by hand: a (256 B, 0..1) at 0, b (128 B, 2..3) at 0, c (64 B, 1..2) at 256: peak 320. The
  // most bytes live at once are 320 too (a and c at position 1).
  const buffers = [buf(1, 256, 0, 1), buf(2, 128, 2, 3), buf(3, 64, 1, 2)];

  it("places as without a limit when the peak is within it, and gives up when it is not", () => {
    expect(placeBuffersWithin(buffers, 320)).toEqual(placeBuffers(buffers));
    expect(placeBuffersWithin(buffers, 319)).toBeUndefined();
  });

  it("gives up a memory plan only when its temporaries exceed the limit", () => {
    const g = parseGraph(program);
    const persistent = persistentLayout(g, false);
    const plan = planMemory(g, persistent, 2);
    const dynamic = plan.peak - persistent.bytes;
    expect(planMemoryWithin(g, persistent, 2, dynamic)?.peak).toBe(plan.peak);
    expect(planMemoryWithin(g, persistent, 2, dynamic - 1)).toBeUndefined();
    // Below the most bytes live at one moment, it is given up before placement.
    expect(planMemoryWithin(g, persistent, 2, 0)).toBeUndefined();
  });
});
