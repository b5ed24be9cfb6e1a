// How `stow train --tp N` reports a failed rank from mpirun's output (src/driver/train_ranks.ts): the
// whole message of the rank, which may go on for lines, without mpirun's own text after it.
import { describe, expect, it } from "vitest";
import { describeFailure } from "../src/driver/train_ranks.ts";

const MPI_BOX = ["-".repeat(74), "MPI_ABORT was invoked on rank 0 in communicator MPI_COMM_WORLD", "with errorcode 1.", "-".repeat(74)];
const exited = { code: 1, signal: null };

describe("a failed rank's message", () => {
  it("keeps a one-line message on its line", () => {
    const stderr = ["train: rank 1 of 2 failed: bad token file", ...MPI_BOX].join("\n");
    expect(describeFailure(2, exited, stderr)).toBe("rank 1 of 2 failed: bad token file; the other ranks were stopped");
  });

  it("keeps every line of a longer message (a library search's places), and none of mpirun's", () => {
    const message = ["cannot load NCCL (libnccl.so.2): not found by the dynamic loader nor in:", "  /usr/local/cuda/lib64",
      "  /usr/lib/python3*/site-packages/nvidia/*/lib", "Install NVIDIA's wheel."];
    const stderr = [`train: rank 0 of 2 failed: ${message.join("\n")}`, `train: rank 1 of 2 failed: ${message[0]}`, ...MPI_BOX].join("\n");
    const described = describeFailure(2, exited, stderr);
    expect(described).toBe(`rank 0 of 2 failed: ${message.join("\n")}\nThe other ranks were stopped.`);
    expect(described).not.toContain("MPI_ABORT");
  });
});
