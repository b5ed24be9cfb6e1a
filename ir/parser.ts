// Parses the text form of ir/printer.ts back into a Graph, so tests can state graphs as text:
//   # forward
//     %7 = matmul(%5, %0) {ta=false, tb=true} : f32[512,384]  # samples/gpt2.ts:41:12
//   # results: loss=%9
// Value ids are kept as written, so printGraph(parseGraph(text)) === text. Every node's types are
// checked against the op table; any problem is a UserError naming the line.
import { UserError } from "../base/errors.ts";
import { ShapeError, isOpName, opDef } from "./ops.ts";
import type { AttrsOf } from "./op_attrs.ts";
import {
  type AttrValue,
  type Attrs,
  type DType,
  type Graph,
  type Node,
  type NodeOf,
  type ParamInfo,
  type Phase,
  type Shape,
  type SourceLoc,
  type Value,
  formatShape,
  shapeEq,
} from "./types.ts";

const PHASES: readonly string[] = ["forward", "backward", "optimizer"];

/** Reads one line left to right; every failure is reported with the line's number. */
class LineReader {
  pos = 0;
  constructor(
    readonly text: string,
    readonly lineNo: number,
  ) {}

  fail(msg: string): never {
    throw new UserError(`IR text line ${this.lineNo}: ${msg}`);
  }

  skipSpaces(): void {
    while (this.text[this.pos] === " " || this.text[this.pos] === "\t") this.pos++;
  }

  peek(): string {
    this.skipSpaces();
    return this.text[this.pos] ?? "";
  }

  atEnd(): boolean {
    return this.peek() === "";
  }

  /** Consumes `s` if it comes next. */
  accept(s: string): boolean {
    this.skipSpaces();
    if (!this.text.startsWith(s, this.pos)) return false;
    this.pos += s.length;
    return true;
  }

  expect(s: string): void {
    if (!this.accept(s)) this.fail(`expected '${s}' at column ${this.pos + 1}, found '${this.rest()}'`);
  }

  rest(): string {
    return this.text.slice(this.pos);
  }

  /** A token matching `re` (anchored with the sticky flag), or a failure naming `what`. */
  match(re: RegExp, what: string): string {
    this.skipSpaces();
    const sticky = new RegExp(re.source, "y");
    sticky.lastIndex = this.pos;
    const m = sticky.exec(this.text);
    if (!m) this.fail(`expected ${what} at column ${this.pos + 1}, found '${this.rest()}'`);
    this.pos += m[0].length;
    return m[0];
  }

  valueId(): number {
    return Number(this.match(/%\d+/, "a value like %3").slice(1));
  }

  number(): number {
    const tok = this.match(/-?(?:Infinity|NaN|\d+(?:\.\d+)?(?:e[+-]?\d+)?)/, "a number");
    return Number(tok);
  }

  /** A comma-separated list between `open` and `close`. */
  list<T>(open: string, close: string, item: () => T): T[] {
    this.expect(open);
    const items: T[] = [];
    if (this.accept(close)) return items;
    do items.push(item());
    while (this.accept(","));
    this.expect(close);
    return items;
  }

  attrValue(): AttrValue {
    const c = this.peek();
    if (c === "[") return this.list("[", "]", () => this.number());
    if (c === '"') return JSON.parse(this.match(/"(?:[^"\\]|\\.)*"/, "a string")) as string;
    if (this.accept("true")) return true;
    if (this.accept("false")) return false;
    return this.number();
  }

  type(): { dtype: DType; shape: Shape } {
    const dtype = this.match(/f32|i32/, "a type like f32[2,3]") as DType;
    return { dtype, shape: this.list("[", "]", () => this.number()) };
  }
}

interface ParsedNode {
  outs: number[];
  op: string;
  ins: number[];
  attrs: Attrs;
  types: { dtype: DType; shape: Shape }[];
  loc?: SourceLoc;
}

function parseLoc(r: LineReader): SourceLoc {
  const text = r.rest().trim();
  const m = /^(.+):(\d+):(\d+)$/.exec(text);
  if (!m) r.fail(`expected a source location like file.ts:12:5 after '#', found '${text}'`);
  r.pos = r.text.length;
  return { file: m[1], line: Number(m[2]), col: Number(m[3]) };
}

function parseNodeLine(r: LineReader): ParsedNode {
  const outs = [r.valueId()];
  while (r.accept(",")) outs.push(r.valueId());
  r.expect("=");
  const op = r.match(/[a-z_][a-z0-9_]*/, "an op name");
  const ins = r.list("(", ")", () => r.valueId());
  const attrs: Record<string, AttrValue> = {};
  if (r.peek() === "{")
    r.list("{", "}", () => {
      const key = r.match(/[A-Za-z_][A-Za-z0-9_]*/, "an attribute name");
      r.expect("=");
      if (key in attrs) r.fail(`attribute ${key} is given twice`);
      attrs[key] = r.attrValue();
    });
  r.expect(":");
  const types = [r.type()];
  while (r.accept(",")) types.push(r.type());
  const loc = r.accept("#") ? parseLoc(r) : undefined;
  if (!r.atEnd()) r.fail(`unexpected '${r.rest()}' at the end of the line`);
  return { outs, op, ins, attrs, types, loc };
}

function parseResults(r: LineReader): [string, number][] {
  const results: [string, number][] = [];
  if (r.atEnd()) return results;
  do {
    const name = r.match(/[A-Za-z_][A-Za-z0-9_.]*/, "a result name");
    r.expect("=");
    results.push([name, r.valueId()]);
  } while (r.accept(","));
  if (!r.atEnd()) r.fail(`unexpected '${r.rest()}' in the results line`);
  return results;
}

/** Builds the node of a parsed line, checking it against the op table and the values defined so far. */
function makeNode(r: LineReader, p: ParsedNode, id: number, phase: Phase, values: Map<number, Value>): Node {
  if (!isOpName(p.op)) r.fail(`unknown op '${p.op}'`);
  const op = p.op;
  const def = opDef(op);
  // Text attributes have no declared types; infer reads the ones each op needs and rejects what is off.
  const attrs = p.attrs as AttrsOf<typeof op>;
  const arity = def.arity;
  const arityOk =
    arity === "variadic" ? p.ins.length > 0 : typeof arity === "number" ? p.ins.length === arity : arity.includes(p.ins.length);
  if (!arityOk) r.fail(`${p.op} cannot take ${p.ins.length} inputs`);
  const inputs = p.ins.map((vid) => values.get(vid) ?? r.fail(`%${vid} is used before it is defined`));
  let inferred;
  try {
    inferred = def.infer(inputs, attrs);
  } catch (e) {
    if (e instanceof ShapeError) r.fail(e.message);
    // The op table reads attributes without checking them; a missing one surfaces as a TypeError.
    if (e instanceof TypeError) r.fail(`${p.op}: missing or malformed attributes (${e.message})`);
    throw e;
  }
  if (inferred.some((t) => !Array.isArray(t.shape) || t.shape.some((d) => !Number.isInteger(d))))
    r.fail(`${p.op}: missing or malformed attributes (no output shape follows from them)`);
  if (inferred.length !== p.outs.length) r.fail(`${p.op} has ${inferred.length} output(s) here, the line names ${p.outs.length}`);
  if (p.types.length !== p.outs.length) r.fail(`${p.outs.length} output(s) but ${p.types.length} type(s)`);
  const outputs: Value[] = [];
  const node = { id, op, inputs, outputs, attrs, loc: p.loc, phase, placement: "device" } as Node;
  p.outs.forEach((vid, index) => {
    if (values.has(vid)) r.fail(`%${vid} is defined twice`);
    const want = inferred[index];
    const got = p.types[index];
    if (got.dtype !== want.dtype || !shapeEq(got.shape, want.shape))
      r.fail(`%${vid} is written as ${got.dtype}${formatShape(got.shape)} but ${p.op} gives ${want.dtype}${formatShape(want.shape)}`);
    const v: Value = { id: vid, shape: want.shape, dtype: want.dtype, producer: node, index };
    values.set(vid, v);
    outputs.push(v);
  });
  return node;
}

function paramOf(r: LineReader, node: NodeOf<"param">): ParamInfo {
  const { name, shape } = node.attrs;
  if (typeof name !== "string" || !Array.isArray(shape)) r.fail('param needs attributes name="..." and shape=[...]');
  return { name, shape, init: { kind: "normal", std: 0.02 }, decay: shape.length >= 2, value: node.outputs[0], loc: node.loc };
}

/** The graph a printed text describes. Grads are not part of the text form and stay empty. */
export function parseGraph(text: string): Graph {
  const nodes: Node[] = [];
  const params: ParamInfo[] = [];
  const values = new Map<number, Value>();
  const results: { r: LineReader; entries: [string, number][] }[] = [];
  let phase: Phase = "forward";

  text.split("\n").forEach((line, i) => {
    const r = new LineReader(line, i + 1);
    if (r.atEnd()) return;
    if (r.accept("#")) {
      if (r.accept("results:")) return results.push({ r, entries: parseResults(r) });
      const header = r.rest().trim();
      if (!PHASES.includes(header)) r.fail(`unknown header '# ${header}' (expected forward, backward, optimizer or results:)`);
      phase = header as Phase;
      return;
    }
    const node = makeNode(r, parseNodeLine(r), nodes.length, phase, values);
    nodes.push(node);
    if (node.op === "param") params.push(paramOf(r, node));
  });

  const named: Record<string, Value> = {};
  for (const { r, entries } of results)
    for (const [name, vid] of entries) {
      if (name in named) r.fail(`result ${name} is named twice`);
      named[name] = values.get(vid) ?? r.fail(`result ${name} refers to %${vid}, which no line defines`);
    }
  return { nodes, params, named, grads: {} };
}
