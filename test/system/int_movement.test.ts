// A model that moves int32 tensors (transpose, permute and split of arange's positions) builds with g++
// and trains on the CPU backend (issue 17: the moved ints were labelled f32, and the generated C++ did
// not compile). The shape rules and the interpreter are test/unit/int_movement.test.ts's; each kernel on
// i32 is test/system/op_kernels.test.ts's.
import { describe, expect, test } from "vitest";
import { stow } from "../helpers/run.ts";

describe("int32 data movement in a model", () => {
  test("builds and trains two steps on the CPU", () => {
    const r = stow(["train", "test/fixtures/models/int_movement.ts", "--batch", "2", "--steps", "2", "--threads", "1", "--no-sample"]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/step 2\/2 {2}loss \d/);
    // The planned peak is the measured one, ints included.
    const peak = /device high-water (\S+ \S+) \(planned (\S+ \S+)\)/.exec(r.stdout);
    expect(peak?.[1]).toBe(peak?.[2]);
  }, 180_000);
});
