// The readable text form of a graph, one node a line, grouped by phase:
//   %7 = matmul(%5, %0) {ta=false, tb=true} : f32[512,384]  # samples/gpt2.ts:41:12
// Tests state expected graphs in this form, and `stow ir` prints it.
import { type AttrValue, type Graph, type Node, type Value, formatLoc } from "./types.ts";

export function formatType(v: Value): string {
  return `${v.dtype}[${v.shape.join(",")}]`;
}

function formatAttr(v: AttrValue): string {
  if (Array.isArray(v)) return `[${v.join(",")}]`;
  if (typeof v === "string") return JSON.stringify(v);
  return String(v);
}

export function formatNode(n: Node, opts: { locs?: boolean } = {}): string {
  const outs = n.outputs.map((v) => `%${v.id}`).join(", ");
  const ins = n.inputs.map((v) => `%${v.id}`).join(", ");
  const attrs = Object.entries(n.attrs);
  const attrText = attrs.length ? ` {${attrs.map(([k, v]) => `${k}=${formatAttr(v)}`).join(", ")}}` : "";
  const types = n.outputs.map(formatType).join(", ");
  const loc = opts.locs !== false && n.loc ? `  # ${formatLoc(n.loc)}` : "";
  return `${outs} = ${n.op}(${ins})${attrText} : ${types}${loc}`;
}

export function printGraph(g: Graph, opts: { locs?: boolean } = {}): string {
  const lines: string[] = [];
  let phase = "";
  for (const n of g.nodes) {
    if (n.phase !== phase) {
      phase = n.phase;
      lines.push(`# ${phase}`);
    }
    lines.push("  " + formatNode(n, opts));
  }
  const named = Object.entries(g.named).map(([k, v]) => `${k}=%${v.id}`);
  if (named.length) lines.push(`# results: ${named.join(", ")}`);
  return lines.join("\n") + "\n";
}
