// Safetensors, the checkpoint format shared with PyTorch and the C++ runtime: an 8-byte little-endian
// header length N, N bytes of JSON ({name: {dtype, shape, data_offsets}, "__metadata__": {...}}), then the
// tensor bytes, little-endian, at data_offsets relative to byte 8 + N. Every way a file can be corrupt is
// reported with the file and the byte offset, because a checkpoint is often all that is left of a long run.
import fs from "node:fs";
import { UserError } from "../../base/errors.ts";
import { openForReading } from "../util/open_file.ts";
import { writeFileAtomic } from "../util/atomic_write.ts";
import { describeFsError } from "../util/fs_error.ts";

const DTYPE_BYTES = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
} as const;

export type SafetensorsDType = keyof typeof DTYPE_BYTES;

/** F16 and BF16 come back as their raw 16-bit patterns (Uint16Array); BOOL as bytes. */
export type TensorData =
  | Float64Array
  | Float32Array
  | BigInt64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | BigUint64Array
  | Uint32Array
  | Uint16Array
  | Uint8Array;

export interface TensorInfo {
  dtype: SafetensorsDType;
  shape: number[];
  /** Absolute byte range of the tensor's data in the file, [begin, end). */
  byteRange: [number, number];
}

export interface SafetensorsHeader {
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
}

export interface Tensor {
  dtype: SafetensorsDType;
  shape: number[];
  data: TensorData;
}

export interface TensorToWrite {
  name: string;
  shape: readonly number[];
  data: Float32Array | Int32Array;
}

/** Reads and validates the header only: cheap, whatever the size of the file. */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  const fd = openForReading(path, "safetensors file", "a safetensors file");
  try {
    return readHeader(path, fd);
  } finally {
    fs.closeSync(fd);
  }
}

export function readSafetensors(path: string): { tensors: Map<string, Tensor>; metadata: Record<string, string> } {
  const fd = openForReading(path, "safetensors file", "a safetensors file");
  try {
    const header = readHeader(path, fd);
    const tensors = new Map<string, Tensor>();
    for (const [name, info] of header.tensors) {
      const data = allocate(info.dtype, (info.byteRange[1] - info.byteRange[0]) / DTYPE_BYTES[info.dtype]);
      // The host is little-endian, as the format is (x86-64 and AArch64 both are).
      readFully(path, fd, new Uint8Array(data.buffer), info.byteRange[0]);
      tensors.set(name, { dtype: info.dtype, shape: info.shape, data });
    }
    return { tensors, metadata: header.metadata };
  } finally {
    fs.closeSync(fd);
  }
}

/** Writes atomically (src/util/atomic_write.ts). */
export function writeSafetensors(path: string, tensors: readonly TensorToWrite[], metadata: Record<string, string> = {}): void {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    if (t.name === "__metadata__" || t.name in header) {
      throw new Error(`writeSafetensors ${path}: tensor name "${t.name}" is reserved or repeated`);
    }
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (numel !== t.data.length) {
      throw new Error(`writeSafetensors ${path}: tensor ${t.name} has shape [${t.shape}] but ${t.data.length} values`);
    }
    header[t.name] = {
      dtype: t.data instanceof Float32Array ? "F32" : "I32",
      shape: [...t.shape],
      data_offsets: [offset, offset + t.data.byteLength],
    };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  // Pad with spaces so the data starts 8-byte aligned, as the reference implementation does.
  json += " ".repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const jsonBytes = Buffer.from(json, "utf8");
  const lengthBytes = Buffer.alloc(8);
  lengthBytes.writeBigUInt64LE(BigInt(jsonBytes.length));

  try {
    writeFileAtomic(path, [
      lengthBytes,
      jsonBytes,
      ...tensors.map((t) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)),
    ]);
  } catch (e) {
    // Disk full, permissions, a missing directory: the user's to fix, so no stack trace.
    throw new UserError(`${path}: cannot write checkpoint: ${describeFsError(e) ?? (e as Error).message}`);
  }
}

function readHeader(path: string, fd: number): SafetensorsHeader {
  const size = fs.fstatSync(fd).size;
  if (size < 8) {
    throw new UserError(`${path}: too short for safetensors: ${size} bytes, the header length alone is 8 bytes`);
  }
  const lengthBytes = Buffer.alloc(8);
  readFully(path, fd, lengthBytes, 0);
  const headerLength = lengthBytes.readBigUInt64LE(0);
  if (headerLength > BigInt(size - 8)) {
    throw new UserError(
      `${path}: header length ${headerLength} at byte 0 runs past the end of the file (${size} bytes); ` +
        `truncated, or not a safetensors file`,
    );
  }
  const jsonBytes = Buffer.alloc(Number(headerLength));
  readFully(path, fd, jsonBytes, 8);
  const dataStart = 8 + jsonBytes.length;
  const parsed = parseHeaderJson(path, jsonBytes);

  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(parsed)) {
    if (name === "__metadata__") metadata = checkMetadata(path, dataStart, entry);
    else tensors.set(name, checkTensorEntry(path, name, entry, dataStart, size));
  }
  checkNoOverlap(path, tensors);
  return { tensors, metadata };
}

function parseHeaderJson(path: string, jsonBytes: Buffer): Record<string, unknown> {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(jsonBytes);
  } catch {
    throw new UserError(`${path}: header at bytes 8..${8 + jsonBytes.length} is not valid UTF-8`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    const message = (e as Error).message;
    const position = /position (\d+)/.exec(message);
    const at = position ? ` at byte ${8 + Buffer.byteLength(text.slice(0, Number(position[1])))}` : "";
    throw new UserError(`${path}: header at bytes 8..${8 + jsonBytes.length} is not valid JSON${at}: ${message}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new UserError(`${path}: header at byte 8 must be a JSON object of tensors`);
  }
  return parsed as Record<string, unknown>;
}

function checkMetadata(file: string, dataStart: number, entry: unknown): Record<string, string> {
  const where = `${file}: header (bytes 8..${dataStart})`;
  if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
    throw new UserError(`${where}: "__metadata__" must be an object of strings`);
  }
  for (const [key, value] of Object.entries(entry)) {
    if (typeof value !== "string") throw new UserError(`${where}: metadata "${key}" must be a string`);
  }
  return entry as Record<string, string>;
}

function checkTensorEntry(file: string, name: string, entry: unknown, dataStart: number, size: number): TensorInfo {
  const where = `${file}: header (bytes 8..${dataStart})`;
  if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
    throw new UserError(`${where}: tensor "${name}" must be an object with dtype, shape and data_offsets`);
  }
  const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
  if (typeof dtype !== "string" || !(dtype in DTYPE_BYTES)) {
    throw new UserError(
      `${where}: tensor "${name}" has unknown dtype ${JSON.stringify(dtype)}; ` + `known: ${Object.keys(DTYPE_BYTES).join(", ")}`,
    );
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new UserError(`${where}: tensor "${name}" has shape ${JSON.stringify(shape)}, expected non-negative integers`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
    throw new UserError(`${where}: tensor "${name}" has data_offsets ${JSON.stringify(offsets)}, expected [begin, end] byte offsets`);
  }
  const [begin, end] = offsets as [number, number];
  const absolute: [number, number] = [dataStart + begin, dataStart + end];
  if (begin > end || absolute[1] > size) {
    throw new UserError(
      `${file}: tensor "${name}" data at bytes ${absolute[0]}..${absolute[1]} ` +
        `(data_offsets [${begin}, ${end}]) lies outside the data section, bytes ${dataStart}..${size}`,
    );
  }
  const dt = dtype as SafetensorsDType;
  const expected = shape.reduce((a: number, b: number) => a * b, 1) * DTYPE_BYTES[dt];
  if (end - begin !== expected) {
    throw new UserError(
      `${file}: tensor "${name}" at bytes ${absolute[0]}..${absolute[1]} holds ${end - begin} bytes, ` +
        `but ${dt}[${shape.join(", ")}] needs ${expected}`,
    );
  }
  return { dtype: dt, shape: shape as number[], byteRange: absolute };
}

function checkNoOverlap(file: string, tensors: Map<string, TensorInfo>): void {
  const byStart = [...tensors].sort((a, b) => a[1].byteRange[0] - b[1].byteRange[0]);
  // Against the tensor that reaches furthest so far, not just the previous one: an empty tensor between
  // two overlapping ones holds no bytes and must not hide them.
  let reach: [string, TensorInfo] | undefined;
  for (const [name, info] of byStart) {
    if (info.byteRange[0] === info.byteRange[1]) continue;
    if (reach && info.byteRange[0] < reach[1].byteRange[1]) {
      const [prevName, prev] = reach;
      throw new UserError(
        `${file}: tensor "${name}" at bytes ${info.byteRange[0]}..${info.byteRange[1]} overlaps ` +
          `tensor "${prevName}" at bytes ${prev.byteRange[0]}..${prev.byteRange[1]}`,
      );
    }
    if (!reach || info.byteRange[1] > reach[1].byteRange[1]) reach = [name, info];
  }
}

function allocate(dtype: SafetensorsDType, length: number): TensorData {
  switch (dtype) {
    case "F64":
      return new Float64Array(length);
    case "F32":
      return new Float32Array(length);
    case "I64":
      return new BigInt64Array(length);
    case "I32":
      return new Int32Array(length);
    case "I16":
      return new Int16Array(length);
    case "I8":
      return new Int8Array(length);
    case "U64":
      return new BigUint64Array(length);
    case "U32":
      return new Uint32Array(length);
    case "F16":
    case "BF16":
    case "U16":
      return new Uint16Array(length);
    case "U8":
    case "BOOL":
      return new Uint8Array(length);
  }
}

/** One readSync call moves at most 2 GiB; checkpoints of large models are bigger. */
function readFully(file: string, fd: number, into: Uint8Array, position: number): void {
  for (let done = 0; done < into.length;) {
    const n = fs.readSync(fd, into, done, Math.min(into.length - done, 1 << 30), position + done);
    if (n === 0) throw new UserError(`${file}: unexpected end of file at byte ${position + done} (did it change while read?)`);
    done += n;
  }
}
