// ZeRO 3: each data-parallel rank keeps only its shard of each chunk's parameters (zero_param_shard,
// persistent model data), so parameter memory per rank falls as 1/ranks. Each stretch of the program in
// one phase (the forward, the backward; grad-accum repeats them) that reads a chunk's parameters gets
// one zero_all_gather of the whole chunk into a temporary, and its readers see their parameters through
// chunk_views of it; the planner frees the chunk after the stretch's last reader, as it frees any
// temporary. A gather starts `lookahead` gathers before the one it serves, as offloaded chunks'
// copies are prefetched (offload.ts), so on a backend whose collectives run beside compute it is done
// by the time it is read. A chunk holds each parameter at its offset (chunks.ts), so the views are
// bitwise the parameters, and the step computes what the replicated step computes.
// Runs after data-parallel (the gradients are reduce-scattered as at ZeRO 2) and before adamw, which
// updates the shards in place (adamw.ts).
import { GraphBuilder } from "../builder.ts";
import { type Graph, type Value, valueIdBound } from "../types.ts";
import { type ZeroSharding, paramShardName, shardElements } from "./chunks.ts";
import { groupBy } from "./offload.ts";

interface Gather {
  chunk: number;
  /** The chunk and the stretch of one phase it serves, as one number. */
  key: number;
  firstUse: number;
  start: number;
}

export function gatherParams(g: Graph, zero: ZeroSharding, lookahead: number): Graph {
  const { chunks } = zero.chunks;
  const chunkOfValue = new Array<number | undefined>(valueIdBound(g));
  for (const p of g.params) chunkOfValue[p.value.id] = zero.chunks.chunkOf.get(p.name)!;
  const paramName = new Map(g.params.map((p) => [p.value.id, p.name]));

  // Stretches: a new one begins wherever the phase changes.
  const stretch: number[] = [];
  g.nodes.forEach((n, i) => stretch.push(i === 0 ? 0 : stretch[i - 1] + (n.phase === g.nodes[i - 1].phase ? 0 : 1)));
  const keyOf = (i: number, chunk: number) => stretch[i] * chunks.length + chunk;
  const gathers: Gather[] = [];
  const seen = new Set<number>();
  g.nodes.forEach((n, i) => {
    for (const v of n.inputs) {
      const chunk = chunkOfValue[v.id];
      if (chunk === undefined || seen.has(keyOf(i, chunk))) continue;
      seen.add(keyOf(i, chunk));
      gathers.push({ chunk, key: keyOf(i, chunk), firstUse: i, start: i });
    }
  });
  gathers.forEach((l, i) => (l.start = i >= lookahead ? gathers[i - lookahead].firstUse : 0));
  const startsAt = groupBy(gathers, (l) => l.start);

  const b = new GraphBuilder();
  const copy = new Array<Value>(valueIdBound(g)); // old value id -> value in the new graph
  for (const n of g.nodes) if (n.op === "param") copy[n.outputs[0].id] = b.value("param", [], n.attrs, n.loc);
  const byName = new Map(g.params.map((p) => [p.name, p]));
  const shards = chunks.map((c) => {
    const shard = shardElements(c, zero.ranks);
    return b.value("zero_param_shard", [], { name: paramShardName(c.index), shape: [shard], chunk: c.index }, byName.get(c.params[0])!.loc);
  });
  const gathered = new Map<number, Value>(); // gather key -> the whole chunk
  const views = new Map<string, Value>(); // gather key and parameter -> its view

  g.nodes.forEach((n, i) => {
    b.phase = n.phase;
    for (const l of startsAt.get(i) ?? []) {
      const attrs = { chunk: l.chunk, shard: shardElements(chunks[l.chunk], zero.ranks), ranks: zero.ranks };
      gathered.set(l.key, b.value("zero_all_gather", [shards[l.chunk]], attrs, n.loc));
    }
    if (n.op === "param") return;
    const inputs = n.inputs.map((v) => {
      const chunk = chunkOfValue[v.id];
      if (chunk === undefined) return copy[v.id];
      const key = keyOf(i, chunk);
      const name = paramName.get(v.id)!;
      const viewKey = `${key} ${name}`;
      if (!views.has(viewKey)) {
        const offset = chunks[chunk].offsets.get(name)!;
        views.set(viewKey, b.value("chunk_view", [gathered.get(key)!], { offset, shape: v.shape, name }, n.loc));
      }
      return views.get(viewKey)!;
    });
    const made = b.copy(n, inputs);
    n.outputs.forEach((out, k) => (copy[out.id] = made.outputs[k]));
  });
  b.params.push(...g.params.map((p) => ({ ...p, value: copy[p.value.id] })));
  for (const [k, v] of Object.entries(g.named)) b.named[k] = copy[v.id];
  for (const [k, v] of Object.entries(g.grads)) b.grads[k] = copy[v.id];
  return b.build();
}
