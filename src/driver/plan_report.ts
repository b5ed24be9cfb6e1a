// The memory plan as text (for people) and JSON (for tools), before anything runs: parameter count,
// the predicted arena peak and what it is made of, and the largest temporaries with their model lines.
import { formatLoc, numel } from "../../ir/types.ts";
import { formatBytes } from "../cli/progress.ts";
import type { CompiledProgram, Plan } from "./compile.ts";

export function planJson(plan: Plan): object {
  const program = (p: CompiledProgram) => ({
    batch: p.batch,
    seq: p.seq,
    nodes: p.graph.nodes.length,
    device_peak_bytes: p.memory.peak,
    breakdown: p.memory.breakdown,
    buffers: p.memory.buffers.map((b) => ({
      kind: b.kind, bytes: b.bytes, offset: b.offset, start: b.start, end: b.end,
      op: b.node.op, value: b.kind === "workspace" ? null : b.key, loc: b.node.loc ? formatLoc(b.node.loc) : null,
    })),
  });
  return {
    model: plan.modelPath,
    config: plan.config,
    options: plan.options,
    param_count: paramCount(plan),
    arena_bytes: plan.arenaBytes,
    device_peak_bytes: plan.train.memory.peak,
    breakdown: plan.train.memory.breakdown,
    params: plan.train.graph.params.map((p) => ({
      name: p.name, shape: p.shape, offset: plan.persistent.offsets.get(p.name), decay: p.decay,
    })),
    train: program(plan.train),
    infer: program(plan.infer),
  };
}

export function paramCount(plan: Plan): number {
  return plan.train.graph.params.reduce((s, p) => s + numel(p.shape), 0);
}

export function planText(plan: Plan, top = 8): string {
  const m = plan.train.memory;
  const b = m.breakdown;
  const row = (label: string, bytes: number) => `  ${label.padEnd(20)} ${formatBytes(bytes).padStart(12)}`;
  const lines = [
    `model      ${plan.modelPath}  (${Object.entries(plan.config).map(([k, v]) => `${k}=${v}`).join(" ")})`,
    `step       batch ${plan.train.batch} x seq ${plan.train.seq} = ${plan.train.batch * plan.train.seq} tokens, ` +
      `${plan.train.graph.nodes.length} nodes, ${plan.options.threads} threads`,
    `params     ${paramCount(plan).toLocaleString("en-US")}`,
    "",
    `device peak (arena high-water mark, predicted): ${formatBytes(m.peak)}  (${m.peak} bytes)`,
    row("parameters", b.parameters),
    row("optimizer states", b.optimizer_states),
    row("gradients", b.gradients),
    row("activations", b.activations),
    row("workspace", b.workspace),
    row("inputs", b.inputs),
    row("fragmentation", b.fragmentation),
    `  (temporaries as live at node ${m.peakPosition}: ${plan.train.graph.nodes[m.peakPosition].op} ` +
      `at ${formatLoc(plan.train.graph.nodes[m.peakPosition].loc)})`,
    "",
    `largest temporaries:`,
  ];
  const largest = [...m.buffers].sort((x, y) => y.bytes - x.bytes).slice(0, top);
  for (const buf of largest)
    lines.push(`  ${formatBytes(buf.bytes).padStart(12)}  ${buf.kind.padEnd(10)} ${buf.node.op.padEnd(18)} ` +
      `live ${buf.start}..${buf.end}  ${formatLoc(buf.node.loc)}`);
  lines.push("", `inference program (batch 1 x seq ${plan.infer.seq}): peak ${formatBytes(plan.infer.memory.peak)}`);
  return lines.join("\n") + "\n";
}
