// How `stow train --tp N` reports a failed job (src/driver/train_ranks.ts): from the ranks' error events
// (runtime/train_events.ts) the whole message of the rank that ended the job, which may go on for lines;
// from mpirun's own text, a rank that died without a word.
import { describe, expect, it } from "vitest";
import { describeFailure } from "../../src/driver/train_ranks.ts";
import { type ErrorEvent, parseTrainEvent } from "../../runtime/train_events.ts";

const MPI_BOX = [
  "-".repeat(74),
  "MPI_ABORT was invoked on rank 0 in communicator MPI_COMM_WORLD",
  "with errorcode 1.",
  "-".repeat(74),
].join("\n");
const exited = { code: 1, signal: null };
const aborted = (rank: number, message: string): ErrorEvent => ({ event: "error", rank, abort: true, message });

describe("a failed rank's message", () => {
  it("keeps a one-line message on its line", () => {
    expect(describeFailure(2, exited, [aborted(1, "bad token file")], MPI_BOX)).toBe(
      "rank 1 of 2 failed: bad token file; the other ranks were stopped",
    );
  });

  it("keeps every line of a longer message (a library search's places), and none of mpirun's", () => {
    const message = [
      "cannot load NCCL (libnccl.so.2): not found by the dynamic loader nor in:",
      "  /usr/local/cuda/lib64",
      "  /usr/lib/python3*/site-packages/nvidia/*/lib",
      "Install NVIDIA's wheel.",
    ].join("\n");
    const described = describeFailure(2, exited, [aborted(0, message), aborted(1, message)], MPI_BOX);
    expect(described).toBe(`rank 0 of 2 failed: ${message}\nThe other ranks were stopped.`);
    expect(described).not.toContain("MPI_ABORT");
  });

  it("names a rank that died from mpirun's text, and says rank 0's reason when the ranks stopped together", () => {
    const died = "mpirun noticed that process rank 1 with PID 4242 on node box exited on signal 9 (Killed).";
    expect(describeFailure(2, exited, [], died)).toBe("rank 1 of 2 died (signal 9, Killed); the other ranks were stopped");
    const together: ErrorEvent = { event: "error", rank: 0, abort: false, message: "cannot write metrics file m.jsonl at step 3" };
    expect(describeFailure(2, { code: 2, signal: null }, [together], "")).toBe(together.message);
  });
});

describe("the train binary's event lines", () => {
  it("reads an event, and leaves any other line (a library's own output) alone", () => {
    expect(parseTrainEvent('{"event":"saved","path":"a b.safetensors","step":3}')).toEqual({
      event: "saved",
      path: "a b.safetensors",
      step: 3,
    });
    expect(parseTrainEvent("NCCL INFO Bootstrap")).toBeUndefined();
    expect(parseTrainEvent('{"event":"step","loss":')).toBeUndefined();
  });
});
