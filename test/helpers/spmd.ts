// Runs a tensor-parallel graph on simulated ranks in float64: every rank's ordinary nodes with the
// reference interpreter (ir/interpret.ts), and the collectives and rank-dependent ops written out here
// from their definitions, combining the ranks' values directly. Also the reference cut of a full
// parameter into a rank's part (ShardSpec), written independently of runtime/core/shard.cpp.
import { type Feeds, type Tensor, evalNode } from "../../ir/interpret.ts";
import type { Graph, Node, NodeOf, ShardSpec, Shape } from "../../ir/types.ts";
import { numel } from "../../ir/types.ts";

/** The full-tensor index of each element of rank `rank`'s part, or -1 for padding. */
export function shardIndices(full: Shape, spec: ShardSpec, rank: number): number[] {
  const perBlock = spec.full / spec.groups;
  const part = Math.ceil(perBlock / spec.ranks);
  const local = [...full];
  local[spec.axis] = spec.groups * part;
  const inner = numel(full.slice(spec.axis + 1));
  const out: number[] = [];
  for (let i = 0; i < numel(local); i++) {
    const o = Math.floor(i / (local[spec.axis] * inner));
    const j = Math.floor(i / inner) % local[spec.axis];
    const k = i % inner;
    const [block, within] = [Math.floor(j / part), j % part];
    const along = rank * part + within;
    out.push(along >= perBlock ? -1 : (o * spec.full + block * perBlock + along) * inner + k);
  }
  return out;
}

export function takeShard(full: Float64Array, shape: Shape, spec: ShardSpec, rank: number): Float64Array {
  return Float64Array.from(shardIndices(shape, spec, rank), (i) => (i < 0 ? 0 : full[i]));
}

export function spmd(g: Graph, ranks: number, feeds: (rank: number) => Feeds): Map<number, Tensor>[] {
  const envs = Array.from({ length: ranks }, () => new Map<number, Tensor>());
  const rankFeeds = Array.from({ length: ranks }, (_, r) => feeds(r));
  for (const n of g.nodes) {
    const input = (r: number, i: number) => envs[r].get(n.inputs[i].id)! as Float64Array;
    const outs = collective(n, ranks, input) ?? envs.map((env, r) => evalNode(n, (v) => env.get(v.id)!, rankFeeds[r]));
    envs.forEach((env, r) => n.outputs.forEach((v, k) => env.set(v.id, outs[r][k])));
  }
  return envs;
}

/** Outputs of each rank for the ops that need the ranks (or the rank), else undefined. */
function collective(n: Node, ranks: number, input: (rank: number, i: number) => Float64Array): Tensor[][] | undefined {
  const all = (i: number) => Array.from({ length: ranks }, (_, r) => input(r, i));
  const each = (f: (r: number) => Tensor[]) => Array.from({ length: ranks }, (_, r) => f(r));
  const last = (s: Shape) => s[s.length - 1];
  switch (n.op) {
    case "all_reduce": {
      const xs = all(0);
      const reduced = xs[0].map((_, i) =>
        xs.reduce((acc, x) => (n.attrs.reduce === "max" ? Math.max(acc, x[i]) : acc + x[i]), n.attrs.reduce === "max" ? -Infinity : 0),
      );
      return each(() => [reduced.slice()]);
    }
    case "broadcast":
      return each(() => [input(0, 0).slice()]);
    case "tp_copy":
      return each((r) => [input(r, 0).slice()]);
    case "all_gather": {
      const cols = last(n.inputs[0].shape);
      const xs = all(0);
      const out = Float64Array.from({ length: xs[0].length * ranks }, (_, i) => {
        const [row, c] = [Math.floor(i / (cols * ranks)), i % (cols * ranks)];
        return xs[Math.floor(c / cols)][row * cols + (c % cols)];
      });
      return each(() => [out.slice()]);
    }
    case "shard_slice": {
      const cols = last(n.outputs[0].shape);
      return each((r) => [
        Float64Array.from(
          { length: numel(n.outputs[0].shape) },
          (_, i) => input(r, 0)[Math.floor(i / cols) * cols * ranks + r * cols + (i % cols)],
        ),
      ]);
    }
    case "embedding_vp": {
      const [V, C] = n.inputs[0].shape;
      return each((r) => {
        const ids = input(r, 1) as unknown as Int32Array;
        return [
          Float64Array.from({ length: ids.length * C }, (_, i) => {
            const v = ids[Math.floor(i / C)] - r * V;
            return v >= 0 && v < V ? input(r, 0)[v * C + (i % C)] : 0;
          }),
        ];
      });
    }
    case "embedding_vp_bwd": {
      const V = n.attrs.V;
      const C = last(n.inputs[1].shape);
      return each((r) => {
        const ids = input(r, 0) as unknown as Int32Array;
        const out = new Float64Array(V * C);
        ids.forEach((id, p) => {
          const v = id - r * V;
          if (v >= 0 && v < V) for (let c = 0; c < C; c++) out[v * C + c] += input(r, 1)[p * C + c];
        });
        return [out];
      });
    }
    case "cross_entropy_vp_max":
    case "cross_entropy_vp_sums":
    case "cross_entropy_vp_bwd":
      return each((r) => [vocabParallelLoss(n, r, (i) => input(r, i))]);
    case "cross_entropy_vp": {
      return each((r) => {
        const [max, sums] = [input(r, 2), input(r, 3)];
        const N = max.length;
        let total = 0;
        for (let i = 0; i < N; i++) total += max[i] + Math.log(sums[i]) - sums[N + i];
        return [Float64Array.of(total / N)];
      });
    }
    case "sum_squares":
      return each((r) => [Float64Array.of(n.inputs.reduce((s, _, i) => s + input(r, i).reduce((t, x) => t + x * x, 0), 0))]);
    case "norm_from_squares":
      return each((r) => [Float64Array.of(Math.sqrt(n.inputs.reduce((s, _, i) => s + input(r, i)[0], 0)))]);
    default:
      return undefined;
  }
}

/** The three rank-local steps of the vocabulary-parallel cross-entropy, over the rank's columns. */
function vocabParallelLoss(
  n: NodeOf<"cross_entropy_vp_max" | "cross_entropy_vp_sums" | "cross_entropy_vp_bwd">,
  rank: number,
  input: (i: number) => Float64Array,
): Float64Array {
  const V = n.inputs[0].shape[n.inputs[0].shape.length - 1];
  const logits = input(0);
  const N = logits.length / V;
  const valid = (j: number) => rank * V + j < n.attrs.vocab;
  const targets = n.op === "cross_entropy_vp_max" ? undefined : (input(1) as unknown as Int32Array);
  const out = new Float64Array(n.op === "cross_entropy_vp_max" ? N : n.op === "cross_entropy_vp_sums" ? 2 * N : N * V);
  for (let i = 0; i < N; i++) {
    const row = logits.subarray(i * V, (i + 1) * V);
    if (n.op === "cross_entropy_vp_max") {
      out[i] = Math.max(...Array.from(row).filter((_, j) => valid(j)));
      continue;
    }
    const max = input(2)[i];
    const t = targets![i] - rank * V;
    if (n.op === "cross_entropy_vp_sums") {
      out[i] = Array.from(row).reduce((s, x, j) => s + (valid(j) ? Math.exp(x - max) : 0), 0);
      out[N + i] = t >= 0 && t < V && valid(t) ? row[t] : 0;
      continue;
    }
    const [sums, dloss] = [input(3), input(4)[0]];
    for (let j = 0; j < V; j++) out[i * V + j] = valid(j) ? (dloss / N) * (Math.exp(row[j] - max) / sums[i] - (j === t ? 1 : 0)) : 0;
  }
  return out;
}
