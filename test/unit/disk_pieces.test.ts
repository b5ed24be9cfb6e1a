// How host AdamW of model data on disk splits the planned staging buffers into the disk pipeline's slots
// (diskPieces, runtime/core/disk_pipeline.h): three slots of whole blocks that every buffer holds, a
// parameter's slot one block more; one slot of the largest moment when three one-block slots do not fit.
import { describe, expect, test } from "vitest";
import { DISK_BLOCK, diskPieces, pieceByPieceBytes } from "../../ir/passes/memory_plan.ts";

const blocks = (n: number) => n * DISK_BLOCK;

describe("diskPieces", () => {
  test("moments alone: a third of the moment buffer, rounded down to whole blocks", () => {
    // 10 blocks a moment buffer: 3 slots of 3 blocks (3 x 1024 elements), a block left over.
    expect(diskPieces({ diskStage: [0, blocks(10)] })).toEqual({ piece: 3 * 1024, slots: 3 });
  });

  test("the smallest buffer bounds the slots: gradients, then a parameter's blocks with one block a slot more", () => {
    const grads = { copy: 0, update: 0, bytes: blocks(7) };
    expect(diskPieces({ diskStage: [0, blocks(30)], gradStage: grads })).toEqual({ piece: 2 * 1024, slots: 3 });
    // 3 slots of (piece + 1 block) in 12 blocks: pieces of 3 blocks.
    const params = { load: 0, loadBytes: blocks(50), param: 0, paramBytes: blocks(12) };
    expect(diskPieces({ diskStage: [0, blocks(30)], paramStage: params })).toEqual({ piece: 3 * 1024, slots: 3 });
    // Each slot's parameter blocks end within the buffer.
    expect(3 * (3 * 1024 * 4 + DISK_BLOCK)).toBeLessThanOrEqual(params.paramBytes);
  });

  test("buffers too small for three one-block slots: one slot holding the largest moment whole", () => {
    expect(diskPieces({ diskStage: [0, blocks(2)] })).toEqual({ piece: 2 * 1024, slots: 1 });
    const params = { load: 0, loadBytes: blocks(4), param: 0, paramBytes: blocks(5) };
    expect(diskPieces({ diskStage: [0, blocks(9)], paramStage: params })).toEqual({ piece: 9 * 1024, slots: 1 });
  });
});

describe("pieceByPieceBytes", () => {
  test("a parameter starting mid-block over several pieces: each piece moves the blocks it touches", () => {
    // 3000 floats from byte 5 blocks + 1000, in pieces of 1024 floats (one block each):
    // piece 0: bytes 21480..25576, blocks 5-6; piece 1: 25576..29672, blocks 6-7; piece 2 (952 floats):
    // 29672..33480, blocks 7-8. 2 blocks each, 6 in all, though the parameter lies in 4 (blocks 5-8).
    expect(pieceByPieceBytes(blocks(5) + 1000, 3000, 1024)).toBe(blocks(6));
    // One piece holding it all: just its 4 blocks.
    expect(pieceByPieceBytes(blocks(5) + 1000, 3000, 4096)).toBe(blocks(4));
    // Starting on a block, pieces of whole blocks share none: 3000 floats are blocks 0-2.
    expect(pieceByPieceBytes(blocks(2), 3000, 1024)).toBe(blocks(3));
  });
});
