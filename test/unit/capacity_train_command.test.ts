// The train command `stow capacity` prints: the user's flags as typed, less those capacity decides or
// alone reads, plus its choices.
import { describe, expect, test } from "vitest";
import { shellLine, trainCommand } from "../../src/cli/capacity_train_command.ts";

const answer = {
  memberFlags: ["--preset", "175B", "--set", "layers=97", "--seq", "1024"],
  gradAccum: 8,
  ranks: 1,
  deviceMemory: 23.5 * 2 ** 30,
};

describe("capacity's train command", () => {
  test("keeps the user's flags, replaces the ones capacity chose, and adds the device budget and a disk folder", () => {
    const args = ["samples/gpt2.ts", "--target", "rtx4090-24g", "--host-memory", "256GiB", "--disk-memory", "4TiB", "--json"];
    expect(trainCommand([...args, "--grad-accum=2", "--preset", "6.7B", "--seq", "512"], answer)).toEqual([
      "stow",
      "train",
      "samples/gpt2.ts",
      "--target",
      "rtx4090-24g",
      "--host-memory",
      "256GiB",
      "--disk-memory",
      "4TiB",
      ...answer.memberFlags,
      "--grad-accum",
      "8",
      "--device-memory",
      "23.5GiB",
      "--disk-path",
      "DIR",
    ]);
  });

  test("--ranks becomes --dp and --zero 3; a given --device-memory and --disk-path stay as typed", () => {
    const args = ["m.ts", "--ranks", "2", "--device-memory", "1000", "--disk-memory", "1GiB", "--disk-path=/nvme", "--set", "dim=64"];
    expect(trainCommand(args, { ...answer, ranks: 2 })).toEqual([
      "stow",
      "train",
      "m.ts",
      "--device-memory",
      "1000",
      "--disk-memory",
      "1GiB",
      "--disk-path=/nvme",
      "--set",
      "dim=64",
      ...answer.memberFlags,
      "--grad-accum",
      "8",
      "--dp",
      "2",
      "--zero",
      "3",
    ]);
    // A device budget that binary units do not state exactly is given in bytes.
    expect(trainCommand(["m.ts"], { ...answer, deviceMemory: 1025001 }).slice(-2)).toEqual(["--device-memory", "1025001"]);
  });

  test("the shell line quotes what a shell would split", () => {
    expect(shellLine(["stow", "train", "my model.ts", "--set", "layers=3"])).toBe("stow train 'my model.ts' --set layers=3");
  });
});
