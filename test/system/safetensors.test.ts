import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { readSafetensors, readSafetensorsHeader, writeSafetensors } from "../../src/checkpoint/safetensors.ts";
import { expectUserError } from "../helpers/expect_error.ts";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "stow-safetensors-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const file = (name: string) => path.join(dir, name);

/** Builds a file byte by byte, independently of the writer under test. */
function craft(name: string, header: unknown, data: Uint8Array, headerLength?: bigint): string {
  const json = Buffer.from(typeof header === "string" ? header : JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(headerLength ?? BigInt(json.length));
  fs.writeFileSync(file(name), Buffer.concat([length, json, data]));
  return file(name);
}

function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

describe("safetensors round trip", () => {
  const tensors = [
    { name: "w", shape: [2, 3], data: new Float32Array([1, -2, 3.5, 1e-30, -0, 6]) },
    { name: "step", shape: [], data: new Int32Array([42]) },
    { name: "empty", shape: [0, 4], data: new Float32Array(0) },
    { name: "b", shape: [3], data: new Float32Array([0.1, 0.2, 0.3]) },
  ];

  it("writes the documented layout and reads it back", () => {
    const p = file("round.safetensors");
    writeSafetensors(p, tensors, { format: "pt", step: "42" });
    const bytes = fs.readFileSync(p);
    const n = Number(bytes.readBigUInt64LE(0));
    expect(n % 8).toBe(0); // data starts 8-byte aligned
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString("utf8"));
    expect(header.__metadata__).toEqual({ format: "pt", step: "42" });
    expect(header.w).toEqual({ dtype: "F32", shape: [2, 3], data_offsets: [0, 24] });
    expect(header.step).toEqual({ dtype: "I32", shape: [], data_offsets: [24, 28] });
    expect(bytes.length).toBe(8 + n + 24 + 4 + 12);
    expect(bytes.readFloatLE(8 + n + 8)).toBe(3.5);
    expect(bytes.readInt32LE(8 + n + 24)).toBe(42);

    const read = readSafetensors(p);
    expect(read.metadata).toEqual({ format: "pt", step: "42" });
    for (const t of tensors) {
      const got = read.tensors.get(t.name)!;
      expect(got.shape).toEqual(t.shape);
      expect(Array.from(got.data as Float32Array)).toEqual(Array.from(t.data));
    }
    expect(read.tensors.get("step")!.dtype).toBe("I32");
    expect(read.tensors.get("w")!.data).toBeInstanceOf(Float32Array);
    expect(fs.readdirSync(dir).filter((f) => f.includes(".tmp"))).toEqual([]);
  });

  it("reads the header alone with absolute byte ranges", () => {
    const p = file("round.safetensors");
    const n = Number(fs.readFileSync(p).readBigUInt64LE(0));
    const header = readSafetensorsHeader(p);
    expect([...header.tensors.keys()]).toEqual(["w", "step", "empty", "b"]);
    expect(header.tensors.get("b")).toEqual({ dtype: "F32", shape: [3], byteRange: [8 + n + 28, 8 + n + 40] });
  });

  it("reads a hand-made file with other dtypes", () => {
    const data = new Uint8Array([...new Uint8Array(new Float64Array([2.5]).buffer), 7, 0, 1, 0]);
    const p = craft(
      "hand.safetensors",
      {
        x: { dtype: "F64", shape: [1], data_offsets: [0, 8] },
        y: { dtype: "U16", shape: [2], data_offsets: [8, 12] },
      },
      data,
    );
    const read = readSafetensors(p);
    expect(Array.from(read.tensors.get("x")!.data as Float64Array)).toEqual([2.5]);
    expect(Array.from(read.tensors.get("y")!.data as Uint16Array)).toEqual([7, 1]);
    expect(read.metadata).toEqual({});
  });

  it("is read by a plain struct/json reader in Python", () => {
    if (!fs.existsSync("/usr/bin/python3")) return;
    const p = file("round.safetensors");
    const script = [
      "import json, struct, sys",
      "raw = open(sys.argv[1], 'rb').read()",
      "(n,) = struct.unpack_from('<Q', raw, 0)",
      "h = json.loads(raw[8:8 + n])",
      "b, e = h['w']['data_offsets']",
      "print(json.dumps(list(struct.unpack_from('<6f', raw, 8 + n + b))))",
    ].join("\n");
    const out = execFileSync("/usr/bin/python3", ["-c", script, p], { encoding: "utf8" });
    expect(JSON.parse(out)).toEqual(Array.from(tensors[0]!.data));
  });

  it("refuses to write inconsistent tensors", () => {
    expect(() => writeSafetensors(file("bad.safetensors"), [{ name: "a", shape: [2, 2], data: new Float32Array(3) }])).toThrow(
      /shape \[2,2\] but 3 values/,
    );
    expect(() =>
      writeSafetensors(file("bad.safetensors"), [
        { name: "a", shape: [1], data: new Float32Array(1) },
        { name: "a", shape: [1], data: new Float32Array(1) },
      ]),
    ).toThrow(/repeated/);
  });

  it("reports an unwritable target without a stack trace", () => {
    expectUserError(
      () => writeSafetensors(path.join(dir, "no", "such", "dir.safetensors"), tensors),
      /no\/such\/dir\.safetensors: cannot write checkpoint/,
    );
  });
});

describe("corrupt safetensors files name the file, the problem and the byte offset", () => {
  const good = { a: { dtype: "F32", shape: [3], data_offsets: [0, 12] } };

  it("missing file and directory", () => {
    expectUserError(() => readSafetensors(file("absent.safetensors")), /absent\.safetensors: safetensors file not found/);
    expectUserError(() => readSafetensors(dir), /is a directory/);
  });

  it("shorter than the 8-byte length", () => {
    fs.writeFileSync(file("short.safetensors"), Buffer.from([1, 2, 3, 4, 5]));
    expectUserError(() => readSafetensors(file("short.safetensors")), /short\.safetensors: too short for safetensors: 5 bytes/);
  });

  it("header length beyond the file", () => {
    const p = craft("long.safetensors", good, f32Bytes([1, 2, 3]), 1000n);
    expectUserError(
      () => readSafetensorsHeader(p),
      /long\.safetensors: header length 1000 at byte 0 runs past the end of the file \(\d+ bytes\)/,
    );
  });

  it("invalid JSON", () => {
    const p = craft("json.safetensors", '{"a": {"dtype": "F32",, }', f32Bytes([1, 2, 3]));
    expectUserError(() => readSafetensors(p), /json\.safetensors: header at bytes 8\.\.33 is not valid JSON at byte \d+/);
  });

  it("a header that is not an object", () => {
    const p = craft("array.safetensors", "[1, 2]  ", new Uint8Array(0));
    expectUserError(() => readSafetensors(p), /array\.safetensors: header at byte 8 must be a JSON object/);
  });

  it("unknown dtype", () => {
    const p = craft("dtype.safetensors", { a: { dtype: "Q4", shape: [3], data_offsets: [0, 12] } }, f32Bytes([1, 2, 3]));
    expectUserError(() => readSafetensors(p), /dtype\.safetensors: header \(bytes 8\.\.\d+\): tensor "a" has unknown dtype "Q4"/);
  });

  it("offsets beyond the data section", () => {
    const p = craft("range.safetensors", { a: { dtype: "F32", shape: [4], data_offsets: [0, 16] } }, f32Bytes([1, 2, 3]));
    const n = fs.readFileSync(p).readBigUInt64LE(0);
    const start = 8 + Number(n);
    expectUserError(
      () => readSafetensors(p),
      new RegExp(
        `range\\.safetensors: tensor "a" data at bytes ${start}\\.\\.${start + 16} \\(data_offsets \\[0, 16\\]\\) ` +
          `lies outside the data section, bytes ${start}\\.\\.${start + 12}`,
      ),
    );
  });

  it("offsets that disagree with shape and dtype", () => {
    const p = craft("size.safetensors", { a: { dtype: "F32", shape: [2], data_offsets: [0, 12] } }, f32Bytes([1, 2, 3]));
    expectUserError(() => readSafetensors(p), /size\.safetensors: tensor "a" at bytes \d+\.\.\d+ holds 12 bytes, but F32\[2\] needs 8/);
  });

  it("reversed offsets, bad shape, malformed entries", () => {
    const data = f32Bytes([1, 2, 3]);
    const reversed = craft("rev.safetensors", { a: { dtype: "F32", shape: [0], data_offsets: [8, 4] } }, data);
    expectUserError(() => readSafetensors(reversed), /tensor "a" data at bytes .* lies outside the data section/);
    const shape = craft("shape.safetensors", { a: { dtype: "F32", shape: [-3], data_offsets: [0, 12] } }, data);
    expectUserError(() => readSafetensors(shape), /tensor "a" has shape \[-3\], expected non-negative integers/);
    const offsets = craft("offs.safetensors", { a: { dtype: "F32", shape: [3], data_offsets: [0] } }, data);
    expectUserError(() => readSafetensors(offsets), /tensor "a" has data_offsets \[0\], expected \[begin, end\]/);
    const entry = craft("entry.safetensors", { a: 5 }, data);
    expectUserError(() => readSafetensors(entry), /tensor "a" must be an object with dtype, shape and data_offsets/);
  });

  it("overlapping tensors", () => {
    const p = craft(
      "overlap.safetensors",
      {
        a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
        b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
      },
      f32Bytes([1, 2, 3]),
    );
    expectUserError(() => readSafetensors(p), /overlap\.safetensors: tensor "b" at bytes \d+\.\.\d+ overlaps tensor "a"/);
    // c lies inside a; the empty e between them holds no bytes and hides nothing.
    const hidden = craft(
      "hidden.safetensors",
      {
        a: { dtype: "F32", shape: [3], data_offsets: [0, 12] },
        e: { dtype: "F32", shape: [0], data_offsets: [4, 4] },
        c: { dtype: "F32", shape: [1], data_offsets: [8, 12] },
      },
      f32Bytes([1, 2, 3]),
    );
    expectUserError(() => readSafetensors(hidden), /hidden\.safetensors: tensor "c" at bytes \d+\.\.\d+ overlaps tensor "a"/);
  });

  it("metadata that is not strings", () => {
    const p = craft("meta.safetensors", { __metadata__: { step: 3 }, ...good }, f32Bytes([1, 2, 3]));
    expectUserError(() => readSafetensors(p), /meta\.safetensors: header \(bytes 8\.\.\d+\): metadata "step" must be a string/);
  });
});
