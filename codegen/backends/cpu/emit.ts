// Emits a Plan as one C++ source file (plan.cpp.njk, beside this file): the parameter table, one
// function per program (training step, inference), and the PlanDesc the runtime reads. renderPlan is
// every backend's: a template names its backend folder's file, and includes the shared parts of
// codegen/templates/.
import { createHash } from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";
import nunjucks from "nunjucks";
import { formatNode } from "../../../ir/printer.ts";
import { type Node, type Value, formatLoc, numel, taskInputsOf, valueBytes } from "../../../ir/types.ts";
import type { MemoryPlan } from "../../../ir/passes/memory_plan.ts";
import type { CompiledProgram, Plan } from "../../../plan/plan.ts";
import { cFloat, kernelCalls } from "./kernel_calls.ts";
import { opKind } from "../../../ir/ops.ts";
import { paramShardName, shardElements } from "../../../ir/passes/chunks.ts";
import { isOverlappable } from "../../../ir/passes/overlap_collectives.ts";
import { type FusedKernelView, fusedKernelView } from "../../fused_kernel.ts";

/** The statements that run one node, given the program's tickets of copies and collectives (a backend's kernel_calls). */
export type NodeCalls = (n: Node, mem: MemoryPlan, tickets: ReadonlyMap<number, number>) => string[];

const codegenDir = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const templates = new nunjucks.Environment(
  new nunjucks.FileSystemLoader([path.join(codegenDir, "backends"), path.join(codegenDir, "templates")]),
  { autoescape: false, throwOnUndefined: true },
);

const INIT_KIND = { normal: 0, zeros: 1, ones: 2 } as const;

/** One program as the templates render it: each node that runs anything, with its calls and workspace. */
export function programView(name: string, prog: CompiledProgram, calls: NodeCalls) {
  const mem = prog.memory;
  const offset = (v: Value | undefined) => (v ? mem.valueOffset.get(v.id)! : -1);
  const named = prog.graph.named;
  const inputs = ["tokens", "targets", "position"]
    .filter((k) => named[k])
    .map((k) => ({
      name: k,
      offset: offset(named[k]),
      bytes: valueBytes(named[k]),
    }));
  // A task model's named inputs: the runtime writes each step's rows of them (runtime/core/plan.h InputDesc).
  const taskInputs = taskInputsOf(prog.graph).map(([name, v]) => ({
    name,
    dtype: v.dtype === "i32" ? 0 : 1,
    offset: offset(v),
    rowElements: numel(v.shape) / v.shape[0],
    bytes: valueBytes(v),
  }));
  // A ticket for each copy's and each overlapped collective's `wait`. ZeRO's collectives always run as a
  // start (overlap_collectives.ts gives each a wait); a data-parallel all_reduce without a wait blocks.
  const tickets = new Map<number, number>();
  for (const n of prog.graph.nodes) if (opKind(n.op) === "transfer") tickets.set(n.id, tickets.size);
  const copies = tickets.size;
  const waited = new Set(prog.graph.nodes.filter((n) => n.op === "wait").map((n) => n.inputs[0].producer));
  const runsAsStart = (n: Node) => isOverlappable(n) && (n.op !== "all_reduce" || waited.has(n));
  for (const n of prog.graph.nodes) if (runsAsStart(n)) tickets.set(n.id, tickets.size);
  const nodes = prog.graph.nodes
    .map((n, position) => {
      const lines = calls(n, mem, tickets);
      const [wsOffset, wsBytes] = mem.workspace.get(n.id) ?? [0, 0];
      const label = `${n.op} %${n.outputs[0]?.id} at ${formatLoc(n.loc)}`;
      const hostNode = n.placement === "host";
      return { text: formatNode(n).replace(/\s+/g, " "), label, lines, wsOffset, wsBytes, hostNode, position };
    })
    .filter((n) => n.lines.length > 0);
  return {
    name,
    batch: prog.batch,
    seq: prog.seq,
    peak: mem.peak,
    inputs: [...inputs, ...taskInputs],
    taskInputs,
    nodes,
    tickets: tickets.size,
    copies,
    collectives: tickets.size - copies,
    nodeCount: prog.graph.nodes.length,
    tokens: offset(named.tokens),
    targets: offset(named.targets),
    loss: offset(named.loss),
    logits: offset(named.logits),
    norm: offset(named.grad_norm),
    position: offset(named.position),
  };
}

/**
 * ZeRO's chunks: the byte offset of each (its first parameter), its shard in floats, and this rank's
 * moments of it; at ZeRO 3 also this rank's shard of its parameters, and the offset is the chunk's in
 * the staging buffer where the runtime assembles whole parameters (zeroStagedOffsets).
 */
function zeroChunks(plan: Plan) {
  if (plan.decisions.zero === 0) return [];
  const offsets = plan.persistent.offsets;
  const staged = plan.decisions.zero === 3 ? zeroStagedOffsets(plan) : offsets;
  return plan.chunks.chunks.map((c) => ({
    offset: staged.get(c.params[0])!,
    shard: shardElements(c, plan.decisions.dp),
    mOffset: offsets.get(`opt.m.chunk${c.index}`)!,
    vOffset: offsets.get(`opt.v.chunk${c.index}`)!,
    shardOffset: offsets.get(paramShardName(c.index)) ?? -1,
    onHost: plan.persistent.onHost.has(`opt.m.chunk${c.index}`),
  }));
}

/** The generated kernels of the programs' fused nodes (named by value id, so one program may have them). */
export function fusedKernels(programs: readonly CompiledProgram[]) {
  const withFused = programs.filter((p) => p.graph.nodes.some((n) => n.op === "fused"));
  if (withFused.length > 1) throw new Error("internal: fused nodes in more than one program would share kernel names");
  return withFused.flatMap((p) => p.graph.nodes.flatMap((n) => (n.op === "fused" ? [fusedKernelView(n, p.memory)] : [])));
}

/** Fused kernels as a backend's template part renders them (`cpu/fused_kernels.njk`, `cuda/fused_kernels.njk`). */
export function renderFusedKernels(template: string, fusedKernels: readonly FusedKernelView[]): string {
  return templates.render(template, { fusedKernels });
}

/**
 * ZeRO 3: no rank holds a parameter whole, so a parameter's offset is where it lies in the host staging
 * buffer the runtime initialises, loads and saves whole parameters in: the chunks back to back, each
 * padded to its ranks' shards, so that a rank's shard of a chunk is one contiguous range of it.
 */
function zeroStagedOffsets(plan: Plan): Map<string, number> {
  const offsets = new Map<string, number>();
  let start = 0;
  for (const c of plan.chunks.chunks) {
    for (const name of c.params) offsets.set(name, start + c.offsets.get(name)!);
    start += 4 * plan.decisions.dp * shardElements(c, plan.decisions.dp);
  }
  return offsets;
}

export function emitCpp(plan: Plan): { source: string; hash: string } {
  return renderPlan(plan, "cpu/plan.cpp.njk", kernelCalls);
}

/** Renders a plan with a backend's template (codegen/backends/<name>/...) and kernel calls; the CPU's and the CUDA's share the rest. */
export function renderPlan(
  plan: Plan,
  template: string,
  calls: NodeCalls,
  extra: Record<string, unknown> = {},
): { source: string; hash: string } {
  const persistent = plan.decisions.zero === 3 ? zeroStagedOffsets(plan) : plan.persistent.offsets;
  const moments = plan.persistent.offsets;
  const params = plan.train.graph.params.map((p) => ({
    name: p.name,
    rank: p.shape.length,
    shape: [...p.shape, ...Array(4 - p.shape.length).fill(0)].join(", "),
    numel: numel(p.shape),
    offset: persistent.get(p.name),
    // No moments of its own: a buffer has none, and under ZeRO its chunk's shard holds them (zeroChunks).
    mOffset: moments.get(`opt.m.${p.name}`) ?? -1,
    vOffset: moments.get(`opt.v.${p.name}`) ?? -1,
    initKind: INIT_KIND[p.init.kind],
    initStd: cFloat(p.init.kind === "normal" ? p.init.std : 0),
    decay: p.decay,
    // Offloaded: in the host region, or on disk (paramOnDisk); either way not in the arena.
    onHost: plan.persistent.onHost.has(p.name) || plan.persistent.onDisk.has(p.name),
    momentsOnDisk: plan.persistent.onDisk.has(`opt.m.${p.name}`),
    paramOnDisk: plan.persistent.onDisk.has(p.name),
    shard: p.shard ? `${p.shard.axis}, ${p.shard.groups}, ${p.shard.full}` : "-1, 1, 0",
  }));
  const context = {
    modelPath: plan.modelPath,
    configText: Object.entries(plan.config)
      .map(([k, v]) => `${k}=${v}`)
      .join(" "),
    // What a checkpoint records of the model and a resumed one must match (its file is named at run time).
    configJson: JSON.stringify(JSON.stringify(plan.config)),
    vocab: plan.config.vocab,
    arenaBytes: plan.arenaBytes,
    hostBytes: plan.hostBytes,
    deviceBudget: plan.decisions.deviceBudget ?? 0,
    paramBytes: plan.persistent.paramBytes,
    optStateBytes: plan.persistent.optStateBytes,
    params,
    programs: [programView("train", plan.train, calls), programView("infer", plan.infer, calls)],
    fusedKernels: fusedKernels([plan.train, plan.infer]),
    ranks: plan.decisions.ranks,
    dp: plan.decisions.dp,
    zero: plan.decisions.zero,
    zeroChunks: zeroChunks(plan),
    diskBytes: plan.persistent.diskBytes,
    diskStage: plan.persistent.diskStage?.[0] ?? -1,
    paramStage: plan.persistent.paramStage ?? { load: -1, loadBytes: 0, param: -1, paramBytes: 0 },
    hash: "HASH",
    ...extra,
  };
  // The hash names the plan by everything that shapes its code; it is stamped in after rendering.
  const body = templates.render(template, context);
  const hash = createHash("sha256").update(body).digest("hex").slice(0, 16);
  return { source: body.replace('"HASH"', `"${hash}"`), hash };
}
