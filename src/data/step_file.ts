// Step files: a task model's training data, every step's global batch of every named input, in the
// format the runtime reads (runtime/core/step_file.h says it byte by byte). Written atomically.
import { writeFileAtomic } from "../util/atomic_write.ts";

export const STEP_FILE_MAGIC = 20261203;
const VERSION = 1;
const NAME_BYTES = 64;

export interface StepFileInput {
  name: string;
  dtype: "i32" | "f32";
  /** Elements of one example. */
  rowElements: number;
}

/** Writes `steps` batches of `rows` examples; batch(step)[i] holds input i's rows x rowElements values. */
export function writeStepFile(
  path: string,
  inputs: readonly StepFileInput[],
  rows: number,
  steps: number,
  batch: (step: number) => (Int32Array | Float32Array)[],
): void {
  const header = 32 + (NAME_BYTES + 16) * inputs.length;
  const stepBytes = inputs.reduce((s, x) => s + 4 * rows * x.rowElements, 0);
  const bytes = Buffer.alloc(header + steps * stepBytes);
  bytes.writeInt32LE(STEP_FILE_MAGIC, 0);
  bytes.writeInt32LE(VERSION, 4);
  bytes.writeInt32LE(inputs.length, 8);
  bytes.writeBigInt64LE(BigInt(steps), 16);
  bytes.writeBigInt64LE(BigInt(rows), 24);
  inputs.forEach((x, i) => {
    const at = 32 + (NAME_BYTES + 16) * i;
    bytes.write(x.name, at, NAME_BYTES, "utf8");
    bytes.writeInt32LE(x.dtype === "i32" ? 0 : 1, at + NAME_BYTES);
    bytes.writeBigInt64LE(BigInt(x.rowElements), at + NAME_BYTES + 8);
  });
  let at = header;
  for (let step = 0; step < steps; step++)
    for (const values of batch(step)) {
      Buffer.from(values.buffer, values.byteOffset, values.byteLength).copy(bytes, at);
      at += values.byteLength;
    }
  writeFileAtomic(path, bytes);
}
