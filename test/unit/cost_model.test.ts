// The cost model's structure: products and streams run at rates that depend on their size when the
// machine has measured rates (interpolated between the measured sizes, flat beyond them), attention at
// its own measured grid, the fused LM head as products plus a softmax pass, measured elementwise kernels
// at their rates; a machine with none of these (a GPU profile) predicts as before, from matmulFlops and
// memoryBandwidth; collectives over a network link take a ring's time over their group. Expected times
// are worked out here from the rates and the shapes, not read back from the model. No timing: whether
// predictions match this machine is the bench's question (`npm run bench -- capacity-targets`).
import { describe, expect, test } from "vitest";
import { GraphBuilder } from "../../ir/builder.ts";
import {
  DISK_DEFAULT_BANDWIDTH,
  type Machine,
  attentionRate,
  meanMachine,
  nodeSeconds,
  productRate,
  simulateStep,
} from "../../ir/cost_model.ts";
import type { Node, Shape } from "../../ir/types.ts";
import { fitRing } from "../../src/targets/mpi_link.ts";
import type { AttrsOf, OpName } from "../../ir/op_attrs.ts";

const plain: Machine = { matmulFlops: 1e12, memoryBandwidth: 1e11, linkBandwidth: 1e10, hostBandwidth: 2e10 };
// Rates rise tenfold from 1 MFLOP to 1 GFLOP calls.
const measured: Machine = {
  ...plain,
  productRates: [
    { size: 1e6, rate: 1e10 },
    { size: 1e9, rate: 1e11 },
  ],
  // 12 MB and more stream at 1e11 bytes/s (the memory bandwidth); 1.2 MB, in cache, at 4e11.
  streamRates: [
    { size: 1.2e6, rate: 4e11 },
    { size: 1.2e7, rate: 1e11 },
  ],
  attentionRates: {
    T: [64, 256],
    D: [32, 128],
    forward: [
      [1e9, 2e9],
      [4e9, 8e9],
    ],
    backward: [
      [3e9, 6e9],
      [12e9, 24e9],
    ],
  },
  softmaxRate: 1e9,
  elementRates: { gelu: 1e8 },
};

function node(op: OpName, shapes: Shape[], attrs: Record<string, number | boolean> = {}): Node {
  const b = new GraphBuilder();
  const inputs = shapes.map((shape, i) =>
    b.value("input", [], { name: `x${i}`, shape, dtype: i === 2 && op.startsWith("linear") ? "i32" : "f32" }),
  );
  return b.add(op, inputs, attrs as AttrsOf<OpName>) as Node;
}

describe("product rates", () => {
  test("a measured size runs at its rate; sizes between interpolate on log scales; sizes beyond hold the end rate", () => {
    expect(productRate(measured, 1e6)).toBeCloseTo(1e10, -3);
    expect(productRate(measured, 1e9)).toBeCloseTo(1e11, -4);
    // Halfway on the log scale of size (10^7.5) is halfway on the log scale of rate (10^10.5).
    expect(productRate(measured, 10 ** 7.5) / 10 ** 10.5).toBeCloseTo(1, 9);
    expect(productRate(measured, 1e3) / 1e10).toBeCloseTo(1, 12);
    expect(productRate(measured, 1e12) / 1e11).toBeCloseTo(1, 12);
    expect(productRate(plain, 1e6)).toBe(plain.matmulFlops);
  });

  test("a matmul runs at the rate of one sgemm call's size; a batched one is several calls", () => {
    // [100, 50] x [50, 100]: 2 * 100 * 100 * 50 = 1e6 FLOPs, one call, at 1e10 FLOP/s.
    expect(
      nodeSeconds(
        node("matmul", [
          [100, 50],
          [50, 100],
        ]),
        measured,
      ),
    ).toBeCloseTo(1e6 / 1e10, 12);
    // Ten such products in a batch: ten calls of 1e6 FLOPs, not one call of 1e7.
    expect(
      nodeSeconds(
        node("matmul", [
          [10, 100, 50],
          [10, 50, 100],
        ]),
        measured,
      ),
    ).toBeCloseTo((10 * 1e6) / 1e10, 12);
    expect(
      nodeSeconds(
        node("matmul", [
          [100, 50],
          [50, 100],
        ]),
        plain,
      ),
    ).toBeCloseTo(1e6 / 1e12, 15);
  });
});

describe("attention", () => {
  test("rates come from the measured grid, bilinear on log scales, flat past its edges", () => {
    const a = measured.attentionRates!;
    expect(attentionRate(a, "forward", 64, 32)).toBeCloseTo(1e9, -2);
    expect(attentionRate(a, "backward", 256, 128)).toBeCloseTo(24e9, -3);
    // T = 128 is halfway between 64 and 256 on a log scale, D = 64 halfway between 32 and 128: the
    // geometric mean of the four corners.
    expect(attentionRate(a, "forward", 128, 64) / Math.sqrt(Math.sqrt(1e9 * 2e9 * 4e9 * 8e9))).toBeCloseTo(1, 9);
    expect(attentionRate(a, "forward", 2048, 16)).toBeCloseTo(4e9, -3);
  });

  test("an attention node takes its FLOPs at the grid's rate, or at matmulFlops without a grid", () => {
    const q: Shape = [2, 4, 64, 32]; // batch 2, 4 heads, T 64, D 32
    const flops = 2 * 2 * (2 * 4) * 64 * 64 * 32; // two T x T x D products a head
    expect(nodeSeconds(node("attention", [q, q, q]), measured)).toBeCloseTo(flops / 1e9, 12);
    expect(nodeSeconds(node("attention", [q, q, q]), plain)).toBeCloseTo(flops / plain.matmulFlops, 15);
  });
});

describe("the fused LM head", () => {
  // 64 tokens of width 16, a vocabulary of 1000, tiles of 64 x 250.
  const shapes: Shape[] = [[64, 16], [16, 1000], [64]];
  const attrs = { rows: 64, cols: 250 };
  const tileFlops = 2 * 64 * 250 * 16;

  test("is products at the tile's sgemm rate plus a softmax pass over the logits", () => {
    const f = node("linear_cross_entropy", shapes, attrs);
    const products = (2 * 64 * 1000 * 16) / productRate(measured, tileFlops);
    expect(nodeSeconds(f, measured)).toBeCloseTo(products + (64 * 1000) / 1e9, 12);
    // Far slower than its bytes at the memory bandwidth, which is how it was once counted.
    const bytes = 4 * (64 * 16 + 16 * 1000 + 64 + 1 + 64);
    expect(nodeSeconds(f, measured)).toBeGreaterThan(10 * (bytes / measured.memoryBandwidth));
  });

  test("without measured rates it is all FLOPs at matmulFlops", () => {
    const f = node("linear_cross_entropy", shapes, attrs);
    expect(nodeSeconds(f, plain)).toBeCloseTo((2 * 64 * 1000 * 16 + 4 * 64 * 1000) / plain.matmulFlops, 15);
  });
});

describe("elementwise kernels", () => {
  test("a kernel measured by op takes its elements at that rate; the others their bytes at the memory bandwidth", () => {
    expect(nodeSeconds(node("gelu", [[1000, 100]]), measured)).toBeCloseTo(1e5 / 1e8, 15);
    // Without a measured rate: reads and writes 1e5 floats each.
    expect(nodeSeconds(node("gelu", [[1000, 100]]), plain)).toBeCloseTo((8 * 1e5) / plain.memoryBandwidth, 15);
  });

  test("other kernels stream their bytes at the bandwidth measured at their size", () => {
    // 1e5 floats each of a, b and out: 1.2 MB, the in-cache size.
    expect(
      nodeSeconds(
        node("add", [
          [1000, 100],
          [1000, 100],
        ]),
        measured,
      ),
    ).toBeCloseTo(1.2e6 / 4e11, 15);
    // Ten times larger: the out-of-cache size, at the memory bandwidth; larger still, the same.
    expect(
      nodeSeconds(
        node("add", [
          [10000, 100],
          [10000, 100],
        ]),
        measured,
      ),
    ).toBeCloseTo(1.2e7 / 1e11, 15);
    expect(
      nodeSeconds(
        node("add", [
          [100000, 100],
          [100000, 100],
        ]),
        measured,
      ),
    ).toBeCloseTo(1.2e8 / 1e11, 15);
    // Between them, between the rates.
    const between = nodeSeconds(
      node("add", [
        [3000, 100],
        [3000, 100],
      ]),
      measured,
    );
    expect(between).toBeGreaterThan(3.6e6 / 4e11);
    expect(between).toBeLessThan(3.6e6 / 1e11);
    expect(
      nodeSeconds(
        node("add", [
          [1000, 100],
          [1000, 100],
        ]),
        plain,
      ),
    ).toBeCloseTo(1.2e6 / plain.memoryBandwidth, 15);
  });
});

describe("meanMachine", () => {
  test("averages every rate point by point, and refuses machines measured differently", () => {
    const doubled: Machine = {
      matmulFlops: 2e12,
      memoryBandwidth: 2e11,
      linkBandwidth: 2e10,
      hostBandwidth: 4e10,
      productRates: measured.productRates!.map((p) => ({ size: p.size, rate: 2 * p.rate })),
      streamRates: measured.streamRates,
      attentionRates: {
        ...measured.attentionRates!,
        forward: [
          [3e9, 2e9],
          [4e9, 8e9],
        ],
        backward: measured.attentionRates!.backward,
      },
      softmaxRate: 3e9,
      elementRates: { gelu: 3e8 },
    };
    const m = meanMachine(measured, doubled);
    expect(m).toMatchObject({
      matmulFlops: 1.5e12,
      memoryBandwidth: 1.5e11,
      linkBandwidth: 1.5e10,
      hostBandwidth: 3e10,
      softmaxRate: 2e9,
      elementRates: { gelu: 2e8 },
    });
    expect(m.productRates).toEqual([
      { size: 1e6, rate: 1.5e10 },
      { size: 1e9, rate: 1.5e11 },
    ]);
    expect(m.streamRates).toEqual(measured.streamRates);
    expect(m.attentionRates!.forward).toEqual([
      [2e9, 2e9],
      [4e9, 8e9],
    ]);
    expect(() => meanMachine(measured, plain)).toThrow(/not measured alike/);
    expect(() => meanMachine(measured, { ...measured, productRates: [{ size: 1e6, rate: 1 }] })).toThrow(/measured sizes differ/);
    expect(() => meanMachine(measured, { ...measured, elementRates: { add: 1e8 } })).toThrow(/not measured alike/);
  });
});

describe("model data in the disk tier", () => {
  test("host AdamW overlaps its update with the disk bytes it reads and writes back at the machine's disk rates", () => {
    const b = new GraphBuilder();
    const n = 1000;
    const [p, g, m, v] = ["p", "g", "m", "v"].map((name) => b.value("input", [], { name, shape: [n], dtype: "f32" }));
    const update = b.add("adamw", [p, g, m, v], { decay: true }, undefined, { placement: "host" });
    const graph = b.build();
    const disk: Machine = { ...plain, diskReadBandwidth: 1e9, diskWriteBandwidth: 5e8 };
    const adamw = (28 * n) / plain.hostBandwidth;
    const diskIo = new Map([[update.id, { read: 3 * 4096, write: 2 * 4096 }]]);
    expect(simulateStep(graph, disk).seconds).toBeCloseTo(adamw, 15);
    // The disk's reads and writes one after the other, longer here than the update they overlap.
    const diskSeconds = (3 * 4096) / 1e9 + (2 * 4096) / 5e8;
    expect(diskSeconds).toBeGreaterThan(adamw);
    expect(simulateStep(graph, disk, { diskIo }).seconds).toBeCloseTo(diskSeconds, 15);
    expect(simulateStep(graph, plain, { diskIo }).seconds).toBeCloseTo(Math.max(adamw, (5 * 4096) / DISK_DEFAULT_BANDWIDTH), 15);
    // A disk fast enough hides behind the update.
    const fast: Machine = { ...plain, diskReadBandwidth: 1e13, diskWriteBandwidth: 1e13 };
    expect(simulateStep(graph, fast, { diskIo }).seconds).toBeCloseTo(adamw, 15);
  });

  test("a chunk's copy from disk holds its direction of the link for the disk read and then the copy", () => {
    const b = new GraphBuilder();
    const host = b.value("input", [], { name: "p", shape: [1000], dtype: "f32" });
    const copy = b.value("chunk_h2d", [host], { chunk: 0, elements: 1000 }, undefined, { payload: "model" });
    b.value("wait", [copy], {});
    const graph = b.build();
    const disk: Machine = { ...plain, diskReadBandwidth: 1e9, diskWriteBandwidth: 5e8 };
    const link = 4000 / plain.linkBandwidth;
    expect(simulateStep(graph, disk).seconds).toBeCloseTo(link, 15);
    const diskIo = new Map([[copy.producer.id, { read: 4096, write: 0 }]]);
    expect(simulateStep(graph, disk, { diskIo }).seconds).toBeCloseTo(4096 / 1e9 + link, 15);
  });
});

describe("collectives over a network link", () => {
  // 1 GB/s a rank sends, 1 ms a ring step: times in seconds are easy to read off.
  const link = { bandwidth: 1e9, latency: 1e-3 };
  const networked: Machine = { ...plain, network: link };
  const x = [1000, 250]; // 1e6 bytes
  test("a ring: all-reduce sends 2 (p - 1) / p of the tensor in 2 (p - 1) steps; gathers and scatters half that", () => {
    const mesh = { tp: 4, dp: 2 };
    // Tensor-parallel group (4 ranks): 2 * 3/4 * 1e-3 s + 6 steps.
    expect(nodeSeconds(node("all_reduce", [x], { reduce: "sum" } as never), networked, undefined, mesh)).toBeCloseTo(1.5e-3 + 6e-3, 12);
    // Data-parallel group (2 ranks): 2 * 1/2 * 1e-3 s + 2 steps.
    const dp = node("all_reduce", [x], { reduce: "mean", group: "dp" } as never);
    expect(nodeSeconds(dp, networked, undefined, mesh)).toBeCloseTo(1e-3 + 2e-3, 12);
    // An all-gather to 4 x 1e6 bytes: 3/4 of 4e6 bytes, 3 steps; a reduce-scatter of 1e6 bytes: 3/4 of it.
    expect(nodeSeconds(node("all_gather", [x], { ranks: 4 }), networked, undefined, mesh)).toBeCloseTo(3e-3 + 3e-3, 12);
    expect(nodeSeconds(node("reduce_scatter", [[250, 1000]], { ranks: 4 }), networked, undefined, mesh)).toBeCloseTo(0.75e-3 + 3e-3, 12);
    // A broadcast pipelined along the ring: the tensor once, 3 steps.
    expect(nodeSeconds(node("broadcast", [x], { root: 0 }), networked, undefined, mesh)).toBeCloseTo(1e-3 + 3e-3, 12);
    // One rank sends nothing.
    expect(nodeSeconds(dp, networked, undefined, { tp: 4, dp: 1 })).toBe(0);
  });

  test("ZeRO's chunk collectives: the whole chunk's bytes, as a reduce-scatter and an all-gather", () => {
    const mesh = { tp: 1, dp: 2 };
    const shard = 125_000; // floats: each of 2 ranks holds 0.5e6 bytes of a 1e6-byte chunk
    const packed = node("zero_reduce_scatter", [[2 * shard]], { chunk: 0, shard, ranks: 2 });
    expect(nodeSeconds(packed, networked, undefined, mesh)).toBeCloseTo(0.5e-3 + 1e-3, 12);
    const gather = node("zero_gather", [[100, 100]], { chunk: 0, shard, ranks: 2 });
    expect(nodeSeconds(gather, networked, undefined, mesh)).toBeCloseTo(0.5e-3 + 1e-3, 12);
    // ZeRO 3 gathers each chunk's parameters from the shards before use.
    const params = node("zero_all_gather", [[shard]], { chunk: 0, shard, ranks: 2 });
    expect(nodeSeconds(params, networked, undefined, mesh)).toBeCloseTo(0.5e-3 + 1e-3, 12);
  });

  test("an overlapped gather runs beside compute until its wait: the step takes the longer of the two, and says what was hidden", () => {
    const mesh = { tp: 1, dp: 2 };
    const shard = 125_000; // a 1e6-byte chunk: 0.5 ms of bandwidth + 1 ms latency on this link
    const gather = 1.5e-3;
    // The gather, compute that does not read the chunk, then (overlapped) the wait, then the chunk's reader.
    const step = (computeFloats: number, overlapped: boolean) => {
      const b = new GraphBuilder();
      const own = b.value("input", [], { name: "shard", shape: [shard], dtype: "f32" });
      const x = b.value("input", [], { name: "x", shape: [computeFloats], dtype: "f32" });
      const gathered = b.value("zero_all_gather", [own], { chunk: 0, shard, ranks: 2 });
      b.value("scale", [x], { s: 2 });
      const ready = overlapped ? b.value("wait", [gathered, own], {}) : gathered;
      b.value("add", [b.value("chunk_view", [ready], { offset: 0, shape: [shard] }), own]);
      return simulateStep(b.build(), networked, { mesh });
    };
    for (const floats of [1000, 10_000_000]) {
      const busy = nodeSeconds(node("scale", [[floats]], { s: 2 }), networked);
      const blocking = step(floats, false);
      const overlapped = step(floats, true);
      const rest = blocking.seconds - gather - busy; // the reader
      expect(blocking.networkSeconds).toBeCloseTo(gather, 12);
      expect(blocking.hiddenNetworkSeconds).toBe(0);
      expect(overlapped.networkSeconds).toBeCloseTo(gather, 12);
      expect(overlapped.seconds).toBeCloseTo(Math.max(gather, busy) + rest, 12);
      expect(overlapped.hiddenNetworkSeconds).toBeCloseTo(Math.min(gather, busy), 12);
      expect(overlapped.stallSeconds).toBe(0); // waiting for a collective is not waiting for a copy
    }
  });

  test("an overlapped gradient all-reduce (ZeRO 0 and 1) runs beside the rest of the backward until the optimizer's wait", () => {
    const mesh = { tp: 1, dp: 2 };
    const allReduce = 1e-3 + 2e-3; // 1e6 bytes over 2 ranks: the ring of the first test
    // A gradient, its all-reduce, compute that does not read it, then (overlapped) the wait, then its reader.
    const step = (computeFloats: number, overlapped: boolean) => {
      const b = new GraphBuilder();
      const grad = b.value("scale", [b.value("input", [], { name: "g", shape: x, dtype: "f32" })], { s: 1 });
      const rest = b.value("input", [], { name: "x", shape: [computeFloats], dtype: "f32" });
      const mean = b.value("all_reduce", [grad], { reduce: "mean", group: "dp" });
      b.value("scale", [rest], { s: 2 });
      b.value("scale", [overlapped ? b.value("wait", [mean], {}) : mean], { s: 3 });
      return simulateStep(b.build(), networked, { mesh });
    };
    for (const floats of [1000, 10_000_000]) {
      const busy = nodeSeconds(node("scale", [[floats]], { s: 2 }), networked);
      const blocking = step(floats, false);
      const overlapped = step(floats, true);
      expect(blocking.networkSeconds).toBeCloseTo(allReduce, 12);
      expect(blocking.hiddenNetworkSeconds).toBe(0);
      expect(overlapped.networkSeconds).toBeCloseTo(allReduce, 12);
      expect(overlapped.seconds).toBeCloseTo(blocking.seconds - Math.min(allReduce, busy), 12);
      expect(overlapped.hiddenNetworkSeconds).toBeCloseTo(Math.min(allReduce, busy), 12);
    }
  });

  test("the cpu target's MPI link, fitted to two measured all-reduces, gives the cost model's ring those times", () => {
    // All-reduce times of 16 B and 16 MiB as the cost model predicts them over a known link, as the probe
    // would measure them on a machine with that link; the fit must recover the link.
    const known = { bandwidth: 4.5e9, latency: 2e-6 };
    for (const ranks of [2, 4]) {
      const mesh = { tp: 1, dp: ranks };
      const allReduce = (floats: number) => node("all_reduce", [[floats]], { reduce: "mean", group: "dp" } as never);
      const seconds = (floats: number) => nodeSeconds(allReduce(floats), { ...plain, network: known }, undefined, mesh);
      const fitted = fitRing({ ranks, points: [16, 16 * 2 ** 20].map((bytes) => [bytes, seconds(bytes / 4)]) });
      expect(fitted.bandwidth).toBeCloseTo(known.bandwidth, 0);
      expect(fitted.latency).toBeCloseTo(known.latency, 15);
    }
    expect(() =>
      fitRing({
        ranks: 2,
        points: [
          [16, 1e-3],
          [16 * 2 ** 20, 1e-3],
        ],
      }),
    ).toThrow(/do not fit a link/);
  });

  test("without a link a collective streams its bytes as before; with one, the mesh must be given", () => {
    const n = node("all_reduce", [x], { reduce: "sum" } as never);
    expect(nodeSeconds(n, plain)).toBeCloseTo(2e6 / plain.memoryBandwidth, 15);
    expect(() => nodeSeconds(n, networked)).toThrow(/without the ranks' mesh/);
  });

  test("a played-out step charges collectives to the device's stream, as network time beside compute", () => {
    const b = new GraphBuilder();
    const a = b.value("input", [], { name: "a", shape: [1000, 250], dtype: "f32" });
    const y = b.value("gelu", [a]);
    b.value("all_reduce", [y], { reduce: "sum" } as never);
    const g = b.build();
    const mesh = { tp: 2, dp: 1 };
    const step = simulateStep(g, networked, { mesh });
    const gelu = nodeSeconds(g.nodes[1], networked);
    const reduce = nodeSeconds(g.nodes[2], networked, undefined, mesh);
    expect(reduce).toBeCloseTo(1e-3 + 2e-3, 12);
    expect(step.computeSeconds).toBeCloseTo(gelu, 15);
    expect(step.networkSeconds).toBeCloseTo(reduce, 15);
    expect(step.seconds).toBeCloseTo(gelu + reduce, 15);
  });
});
