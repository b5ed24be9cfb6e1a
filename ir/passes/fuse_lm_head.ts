// Fuses the LM head with the loss: a cross_entropy whose logits come (possibly through a reshape) from a
// matmul by a 2-D weight, and which nothing else reads, becomes one linear_cross_entropy node. Its
// kernels compute the logits a tile at a time and never store them: for GPT-2 at vocab 50257 the
// logits of 1024 tokens are 196 MiB, more than half of a small model's step. The inference program
// keeps the plain matmul, as it returns the logits.
import { GraphBuilder } from "../builder.ts";
import type { Graph, Node, NodeOf, Value } from "../types.ts";

/** Bytes of one tile of logits; the backward's workspace, and nearly all of the forward's. */
const TILE_BYTES = 16 << 20;
/**
 * Rows of a tile at most. Up to this many tokens, every tile spans all rows, so the backward writes
 * each slice of dW once instead of accumulating it over row chunks.
 */
const MAX_TILE_ROWS = 1024;

/**
 * The kernels' sums across vocabulary columns run over units of this many columns, and dW's sum over
 * rows over units of LM_HEAD_ROW_UNIT rows, whatever the tile (runtime/cpu/kernels_lm_head.cpp and
 * runtime/cuda/kernels_lm_head.cu): a tile of whole units gives bitwise the same loss and gradients as
 * any other, so the planner may shrink it to fit a budget.
 */
export const LM_HEAD_COL_UNIT = 256;
export const LM_HEAD_ROW_UNIT = 128;

/** A tile of the logits: `rows` x `cols`. */
export interface LmHeadTile {
  rows: number;
  cols: number;
}

/** The tile of logits [N, V] the kernels work on: all rows up to MAX_TILE_ROWS, and columns to fill TILE_BYTES. */
export function lmHeadTile(N: number, V: number): LmHeadTile {
  const rows = Math.max(1, Math.min(N, MAX_TILE_ROWS));
  const cols = Math.max(1, Math.min(V, Math.floor(TILE_BYTES / 4 / rows)));
  return { rows, cols };
}

/**
 * Tiles smaller than lmHeadTile(N, V), largest (fastest) first: fewer columns, in whole units down to
 * one unit, all rows kept. Each is whole units, so its results are bitwise those of the default tile.
 * Fewer rows are not offered: with all rows in one tile the backward may write dW over W (ops.ts), which
 * saves more than any tile.
 */
export function smallerLmHeadTiles(N: number, V: number): LmHeadTile[] {
  const { rows, cols } = lmHeadTile(N, V);
  const out: LmHeadTile[] = [];
  for (let c = LM_HEAD_COL_UNIT; c < cols; c *= 2) out.unshift({ rows, cols: c });
  return out;
}

interface LmHead {
  /** The cross_entropy node, the matmul, and the reshape between them if any. */
  loss: Node;
  matmul: NodeOf<"matmul">;
  reshape?: Node;
}

function readersOf(g: Graph): Map<number, number> {
  const readers = new Map<number, number>();
  for (const n of g.nodes) for (const v of n.inputs) readers.set(v.id, (readers.get(v.id) ?? 0) + 1);
  for (const v of Object.values(g.named)) readers.set(v.id, (readers.get(v.id) ?? 0) + 1);
  return readers;
}

function findLmHeads(g: Graph): LmHead[] {
  const readers = readersOf(g);
  const onlyReader = (v: Value) => readers.get(v.id) === 1;
  const heads: LmHead[] = [];
  for (const loss of g.nodes) {
    if (loss.op !== "cross_entropy") continue;
    const logits = loss.inputs[0];
    const reshape = logits.producer.op === "reshape" ? logits.producer : undefined;
    const product = reshape ? reshape.inputs[0] : logits;
    const matmul = product.producer;
    if (matmul.op !== "matmul" || matmul.attrs.ta === true || matmul.inputs[1].shape.length !== 2) continue;
    // The reshape must keep the vocabulary axis, or the loss is not over the matmul's rows.
    const vocab = product.shape[1];
    if (reshape && logits.shape[logits.shape.length - 1] !== vocab) continue;
    if (!onlyReader(logits) || (reshape && !onlyReader(product))) continue;
    heads.push({ loss, matmul, reshape });
  }
  return heads;
}

/** `tile`: the logits tile for every fused head (clamped to its logits); default lmHeadTile's. */
export function fuseLmHead(g: Graph, tile?: LmHeadTile): Graph {
  const heads = findLmHeads(g);
  if (heads.length === 0) return g;
  const fused = new Map(heads.map((h) => [h.loss.id, h]));
  const dropped = new Set(heads.flatMap((h) => [h.matmul.id, ...(h.reshape ? [h.reshape.id] : [])]));

  const b = new GraphBuilder();
  const copy = new Map<number, Value>(); // old value id -> value in the new graph
  for (const n of g.nodes) {
    if (dropped.has(n.id)) continue;
    b.phase = n.phase;
    const head = fused.get(n.id);
    if (!head) {
      const made = b.copy(
        n,
        n.inputs.map((v) => copy.get(v.id)!),
      );
      n.outputs.forEach((out, k) => copy.set(out.id, made.outputs[k]));
      continue;
    }
    const [x, w] = head.matmul.inputs.map((v) => copy.get(v.id)!);
    const N = x.shape[0];
    const targets = copy.get(n.inputs[1].id)!;
    // The fused node belongs to the model's LM head line, which reports name for its memory.
    const loc = head.matmul.loc;
    const rowTargets = targets.shape.length === 1 ? targets : b.value("reshape", [targets], { shape: [N] }, loc);
    const V = head.matmul.outputs[0].shape[1];
    const chosen = tile ? { rows: Math.min(tile.rows, Math.max(1, N)), cols: Math.min(tile.cols, Math.max(1, V)) } : lmHeadTile(N, V);
    const attrs = { tb: head.matmul.attrs.tb === true, ...chosen };
    const made = b.add("linear_cross_entropy", [x, w, rowTargets], attrs, loc);
    copy.set(n.outputs[0].id, made.outputs[0]);
  }
  b.params.push(...g.params.map((p) => ({ ...p, value: copy.get(p.value.id)! })));
  for (const [k, v] of Object.entries(g.named)) b.named[k] = copy.get(v.id)!;
  for (const [k, v] of Object.entries(g.grads)) b.grads[k] = copy.get(v.id)!;
  return b.build();
}
