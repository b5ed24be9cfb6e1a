// llm.c token files: a header of 256 little-endian int32 ([0] magic, [1] version, [2] token count), then
// `count` little-endian uint16 tokens. The runtime's data loader reads the same format, so every problem
// is reported here, before a run starts, with the file and the byte offset at fault.
import fs from "node:fs";
import { UserError } from "../../base/errors.ts";
import { openForReading } from "../util/open_file.ts";
import { writeFileAtomic } from "../util/atomic_write.ts";

export const TOKEN_FILE_MAGIC = 20240520;
export const TOKEN_FILE_VERSION = 1;
export const TOKEN_HEADER_BYTES = 256 * 4;

/** Writes tokens atomically (src/util/atomic_write.ts). */
export function writeTokenFile(path: string, tokens: Uint16Array | number[]): void {
  if (tokens.length > 0x7fffffff) throw new UserError(`${path}: ${tokens.length} tokens do not fit the int32 count`);
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (!Number.isInteger(t) || t < 0 || t > 0xffff) {
      throw new UserError(`${path}: cannot write token ${t} at index ${i}: tokens must be integers in [0, 65535]`);
    }
  }
  const bytes = Buffer.alloc(TOKEN_HEADER_BYTES + 2 * tokens.length);
  bytes.writeInt32LE(TOKEN_FILE_MAGIC, 0);
  bytes.writeInt32LE(TOKEN_FILE_VERSION, 4);
  bytes.writeInt32LE(tokens.length, 8);
  for (let i = 0; i < tokens.length; i++) bytes.writeUInt16LE(tokens[i], TOKEN_HEADER_BYTES + 2 * i);
  writeFileAtomic(path, bytes);
}

/** Validates the header against the file size without reading the tokens. */
export function inspectTokenFile(path: string): { count: number } {
  const fd = openForReading(path, "token file", "an llm.c token file");
  try {
    return readHeader(path, fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Reads the tokens; the host is assumed little-endian, as the file is (x86-64 and AArch64 both are). */
export function readTokenFile(path: string): Uint16Array {
  const fd = openForReading(path, "token file", "an llm.c token file");
  try {
    const { count } = readHeader(path, fd);
    const tokens = new Uint16Array(count);
    readFully(path, fd, new Uint8Array(tokens.buffer), TOKEN_HEADER_BYTES);
    return tokens;
  } finally {
    fs.closeSync(fd);
  }
}

/** Throws on the first token outside [0, vocab), naming its index and byte offset in the file. */
export function checkVocab(tokens: Uint16Array | readonly number[], vocab: number, path: string): void {
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (t >= vocab) {
      throw new UserError(
        `${path}: token ${t} at index ${i} (byte ${TOKEN_HEADER_BYTES + 2 * i}) is outside the model's ` +
          `vocabulary of ${vocab} tokens; was the file tokenized for another model?`,
      );
    }
  }
}

/** One readSync call moves at most 2 GiB, and a token file may hold up to 4 GiB of tokens. */
function readFully(path: string, fd: number, into: Uint8Array, position: number): void {
  for (let done = 0; done < into.length;) {
    const n = fs.readSync(fd, into, done, Math.min(into.length - done, 1 << 30), position + done);
    if (n === 0) throw new UserError(`${path}: unexpected end of file at byte ${position + done} (did it change while read?)`);
    done += n;
  }
}

function readHeader(path: string, fd: number): { count: number } {
  const size = fs.fstatSync(fd).size;
  if (size < TOKEN_HEADER_BYTES) {
    throw new UserError(`${path}: too short for an llm.c token file: ${size} bytes, the header alone is ${TOKEN_HEADER_BYTES} bytes`);
  }
  const header = Buffer.alloc(TOKEN_HEADER_BYTES);
  fs.readSync(fd, header, 0, TOKEN_HEADER_BYTES, 0);
  const magic = header.readInt32LE(0);
  if (magic !== TOKEN_FILE_MAGIC) {
    throw new UserError(`${path}: not an llm.c token file: magic at byte 0 is ${magic}, expected ${TOKEN_FILE_MAGIC}`);
  }
  const version = header.readInt32LE(4);
  if (version !== TOKEN_FILE_VERSION) {
    throw new UserError(`${path}: unsupported token file version ${version} at byte 4, expected ${TOKEN_FILE_VERSION} (uint16 tokens)`);
  }
  const count = header.readInt32LE(8);
  if (count < 0) throw new UserError(`${path}: negative token count ${count} at byte 8`);
  const expected = TOKEN_HEADER_BYTES + 2 * count;
  if (expected !== size) {
    throw new UserError(
      `${path}: token count ${count} at byte 8 needs ${expected} bytes (header ${TOKEN_HEADER_BYTES} + 2 per token), ` +
        `but the file has ${size} bytes`,
    );
  }
  return { count };
}
