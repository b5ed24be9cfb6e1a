import { CommanderError } from "commander";
import { describe, expect, it } from "vitest";
import { type CliIo, REPORT_A_BUG, runCli } from "../../src/cli/errors.ts";
import { NonFiniteStateError, SettingError, UserError } from "../../base/errors.ts";
import { parseChoice, parseFloatFlag, parseIntFlag, parseSetOverrides } from "../../src/cli/options.ts";
import { parseSize } from "../../base/units.ts";
import { createProgress, formatDuration } from "../../src/cli/progress.ts";
import { formatBytes } from "../../base/units.ts";

function messageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(UserError);
    return (e as UserError).message;
  }
  throw new Error("expected a UserError");
}

describe("parseIntFlag", () => {
  it("accepts integers within bounds", () => {
    expect(parseIntFlag("--steps", "300")).toBe(300);
    expect(parseIntFlag("--steps", "+7")).toBe(7);
    expect(parseIntFlag("--seed", "-3")).toBe(-3);
    expect(parseIntFlag("--batch", "1", { min: 1, max: 1 })).toBe(1);
  });

  it("rejects what is not an integer, naming the flag", () => {
    for (const text of ["", "abc", "3x", "1.5", "1e3", "0x10", " 3", "NaN", "Infinity"]) {
      expect(messageOf(() => parseIntFlag("--steps", text))).toBe(`--steps: expected an integer, got ${JSON.stringify(text)}`);
    }
    expect(messageOf(() => parseIntFlag("--steps", "99999999999999999999"))).toBe("--steps: 99999999999999999999 is too large");
  });

  it("rejects values out of bounds", () => {
    expect(messageOf(() => parseIntFlag("--batch", "0", { min: 1 }))).toBe("--batch: must be at least 1, got 0");
    expect(messageOf(() => parseIntFlag("--threads", "65", { max: 64 }))).toBe("--threads: must be at most 64, got 65");
  });
});

describe("parseFloatFlag", () => {
  it("accepts decimal and exponent forms", () => {
    expect(parseFloatFlag("--lr", "3e-4")).toBe(0.0003);
    expect(parseFloatFlag("--lr", "0.001")).toBe(0.001);
    expect(parseFloatFlag("--lr", ".5")).toBe(0.5);
    expect(parseFloatFlag("--lr", "2.")).toBe(2);
    expect(parseFloatFlag("--beta1", "-1.5E+2")).toBe(-150);
  });

  it("rejects unparsable text, NaN, Infinity and trailing junk", () => {
    for (const text of ["", "abc", "1e", "3x", "NaN", "Infinity", "-Infinity", "1.2.3", "e5", "."]) {
      expect(messageOf(() => parseFloatFlag("--lr", text))).toBe(`--lr: expected a number, got ${JSON.stringify(text)}`);
    }
    expect(messageOf(() => parseFloatFlag("--lr", "1e999"))).toBe("--lr: 1e999 is out of range");
  });

  it("checks inclusive and exclusive bounds", () => {
    expect(messageOf(() => parseFloatFlag("--lr", "0", { exclusiveMin: 0 }))).toBe("--lr: must be greater than 0, got 0");
    expect(parseFloatFlag("--lr", "1e-9", { exclusiveMin: 0 })).toBe(1e-9);
    expect(parseFloatFlag("--eps", "0", { min: 0 })).toBe(0);
    expect(messageOf(() => parseFloatFlag("--beta2", "1.5", { max: 1 }))).toBe("--beta2: must be at most 1, got 1.5");
    expect(messageOf(() => parseFloatFlag("--wd", "-0.1", { min: 0 }))).toBe("--wd: must be at least 0, got -0.1");
  });
});

describe("parseSize", () => {
  it("reads bytes, binary units (IEC and single letters) and decimal units", () => {
    expect(parseSize("--device-memory", "4096")).toBe(4096);
    expect(parseSize("--device-memory", "4096B")).toBe(4096);
    expect(parseSize("--device-memory", "512KiB")).toBe(512 * 1024);
    expect(parseSize("--device-memory", "512MiB")).toBe(512 * 1024 * 1024);
    expect(parseSize("--device-memory", "1.5GiB")).toBe(1610612736);
    expect(parseSize("--device-memory", "2TiB")).toBe(2 * 1024 ** 4);
    expect(parseSize("--device-memory", "64k")).toBe(65536);
    expect(parseSize("--device-memory", "3M")).toBe(3145728);
    expect(parseSize("--device-memory", "1g")).toBe(1073741824);
    expect(parseSize("--device-memory", "2KB")).toBe(2000);
    expect(parseSize("--device-memory", "2 GB")).toBe(2_000_000_000);
    expect(parseSize("--device-memory", "0.1KB")).toBe(100);
    expect(parseSize("--device-memory", "0.5KiB")).toBe(512);
  });

  it("rejects zero, negative, fractional bytes and unknown units", () => {
    const usage = "expected a size such as 4096, 512MiB, 1.5GiB or 2GB";
    expect(messageOf(() => parseSize("--mem", "0"))).toBe("--mem: size must be greater than zero");
    expect(messageOf(() => parseSize("--mem", "0GiB"))).toBe("--mem: size must be greater than zero");
    expect(messageOf(() => parseSize("--mem", "-5MiB"))).toBe(`--mem: ${usage}, got "-5MiB"`);
    expect(messageOf(() => parseSize("--mem", ""))).toBe(`--mem: ${usage}, got ""`);
    expect(messageOf(() => parseSize("--mem", "lots"))).toBe(`--mem: ${usage}, got "lots"`);
    expect(messageOf(() => parseSize("--mem", "1.5"))).toBe('--mem: "1.5" is not a whole number of bytes');
    expect(messageOf(() => parseSize("--mem", "0.3KiB"))).toBe('--mem: "0.3KiB" is not a whole number of bytes');
    expect(messageOf(() => parseSize("--mem", "12XB"))).toBe(
      '--mem: unknown unit "XB" in "12XB"; use B, KiB, MiB, GiB, TiB (or k, M, G, T), KB, MB, GB, TB',
    );
    expect(messageOf(() => parseSize("--mem", "1e3MiB"))).toBe(`--mem: ${usage}, got "1e3MiB"`);
  });
});

describe("parseSetOverrides", () => {
  const base = { layers: 12, heads: 12, width: 768 };

  it("overrides known integer fields with positive integers and leaves the rest", () => {
    expect(parseSetOverrides(["layers=2", "width=64"], base)).toEqual({ layers: 2, heads: 12, width: 64 });
    expect(parseSetOverrides(["layers=2", "layers=3"], base)).toEqual({ layers: 3, heads: 12, width: 768 });
    expect(parseSetOverrides([], base)).toEqual(base);
    expect(base.layers).toBe(12); // the preset itself is not modified
  });

  it("rejects unknown keys, listing the known ones", () => {
    expect(messageOf(() => parseSetOverrides(["layer=2"], base))).toBe(
      '--set: unknown config field "layer"; the config has: layers, heads, width',
    );
  });

  it("rejects malformed items, and values of integer fields that are not positive integers", () => {
    expect(messageOf(() => parseSetOverrides(["layers"], base))).toBe('--set: expected key=value, got "layers"');
    expect(messageOf(() => parseSetOverrides(["=3"], base))).toBe('--set: expected key=value, got "=3"');
    expect(messageOf(() => parseSetOverrides(["layers=0"], base))).toBe("--set layers: must be at least 1, got 0");
    expect(messageOf(() => parseSetOverrides(["layers=2.5"], base))).toBe(
      "--set layers: expected an integer (the preset's layers is 12), got 2.5",
    );
    expect(messageOf(() => parseSetOverrides(["layers="], base))).toBe('--set layers: expected a number, got ""');
    expect(messageOf(() => parseSetOverrides(["layers=1e400"], base))).toBe("--set layers: 1e400 is out of range");
  });

  it("takes numbers, floats included, for fields the preset holds as non-integers", () => {
    const palmLike = { layers: 4, rope_base: 10000, norm_eps: 1e-5 };
    expect(parseSetOverrides(["norm_eps=1e-6", "rope_base=5e5", "layers=8"], palmLike)).toEqual({
      layers: 8,
      rope_base: 500000,
      norm_eps: 1e-6,
    });
    expect(parseSetOverrides(["norm_eps=.001"], palmLike).norm_eps).toBe(0.001);
    expect(parseSetOverrides(["layers=1e1"], palmLike).layers).toBe(10); // an integer, however written
    expect(messageOf(() => parseSetOverrides(["norm_eps=0"], palmLike))).toBe("--set norm_eps: must be greater than 0, got 0");
    expect(messageOf(() => parseSetOverrides(["norm_eps=-1e-5"], palmLike))).toBe("--set norm_eps: must be greater than 0, got -1e-5");
    expect(messageOf(() => parseSetOverrides(["norm_eps=tiny"], palmLike))).toBe('--set norm_eps: expected a number, got "tiny"');
  });
});

describe("parseChoice", () => {
  it("accepts a listed choice and rejects others with the list", () => {
    expect(parseChoice("--device", "cpu", ["cpu", "cuda"])).toBe("cpu");
    expect(messageOf(() => parseChoice("--device", "gpu", ["cpu", "cuda"]))).toBe('--device: expected one of cpu, cuda, got "gpu"');
    expect(messageOf(() => parseChoice("--device", "CPU", ["cpu", "cuda"]))).toBe('--device: expected one of cpu, cuda, got "CPU"');
  });
});

describe("formatBytes", () => {
  it("prints binary units with one decimal", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(1023)).toBe("1023 B");
    expect(formatBytes(1024)).toBe("1.0 KiB");
    expect(formatBytes(1536)).toBe("1.5 KiB");
    expect(formatBytes(12.3 * 1024 * 1024)).toBe("12.3 MiB");
    expect(formatBytes(5 * 1024 ** 3)).toBe("5.0 GiB");
    expect(formatBytes(2 * 1024 ** 4)).toBe("2.0 TiB");
    expect(formatBytes(-2048)).toBe("-2.0 KiB");
  });

  it("moves to the next unit when rounding would print 1024.0", () => {
    expect(formatBytes(1024 * 1024 - 1)).toBe("1.0 MiB");
    expect(formatBytes(1024 * 1024 - 60)).toBe("1023.9 KiB");
  });
});

describe("formatDuration", () => {
  it("prints seconds, minutes and hours", () => {
    expect(formatDuration(0)).toBe("0.0s");
    expect(formatDuration(4.24)).toBe("4.2s");
    expect(formatDuration(9.96)).toBe("10s");
    expect(formatDuration(42.4)).toBe("42s");
    expect(formatDuration(59.6)).toBe("1m00s");
    expect(formatDuration(187)).toBe("3m07s");
    expect(formatDuration(2 * 3600 + 5 * 60 + 9)).toBe("2h05m09s");
  });

  it("prints ? for an unknown duration", () => {
    expect(formatDuration(NaN)).toBe("?");
    expect(formatDuration(Infinity)).toBe("?");
    expect(formatDuration(-1)).toBe("?");
  });
});

/** A progress bar whose clock advances one second per step, writing into an array. */
function recordedProgress(total: number, isTTY: boolean, every?: number) {
  const out: string[] = [];
  let clock = 100;
  const progress = createProgress({ total, isTTY, every, write: (t) => out.push(t), now: () => clock, columns: 200 });
  const step = (n: number) => {
    clock = 100 + n;
    progress.update({ step: n, loss: 5 - n / 10, tokensPerSecond: 12345, deviceBytes: 3 * 1024 * 1024 });
  };
  return { out, progress, step };
}

describe("createProgress", () => {
  it("without a TTY, prints a plain line every N steps and the last", () => {
    const { out, progress, step } = recordedProgress(10, false, 4);
    for (let n = 1; n <= 10; n++) step(n);
    progress.done();
    expect(out).toEqual([
      "step  4/10  loss 4.6000  12.3k tok/s  mem 3.0 MiB  elapsed 4.0s  eta 6.0s\n",
      "step  8/10  loss 4.2000  12.3k tok/s  mem 3.0 MiB  elapsed 8.0s  eta 2.0s\n",
      "step 10/10  loss 4.0000  12.3k tok/s  mem 3.0 MiB  elapsed 10s  eta 0.0s\n",
    ]);
  });

  it("without a TTY, prints the last state on done() when training stopped early", () => {
    const { out, progress, step } = recordedProgress(10, false, 4);
    for (let n = 1; n <= 5; n++) step(n);
    progress.done();
    expect(out).toHaveLength(2);
    expect(out[1]).toBe("step  5/10  loss 4.5000  12.3k tok/s  mem 3.0 MiB  elapsed 5.0s  eta 5.0s\n");
  });

  it("on a TTY, rewrites one line with a bar and ends it on done()", () => {
    const { out, progress, step } = recordedProgress(4, true);
    for (let n = 1; n <= 4; n++) step(n);
    progress.done();
    expect(out).toEqual([
      "\rstep 1/4  [######..................]  loss 4.9000  12.3k tok/s  mem 3.0 MiB  elapsed 1.0s  eta 3.0s\x1b[K",
      "\rstep 2/4  [############............]  loss 4.8000  12.3k tok/s  mem 3.0 MiB  elapsed 2.0s  eta 2.0s\x1b[K",
      "\rstep 3/4  [##################......]  loss 4.7000  12.3k tok/s  mem 3.0 MiB  elapsed 3.0s  eta 1.0s\x1b[K",
      "\rstep 4/4  [########################]  loss 4.6000  12.3k tok/s  mem 3.0 MiB  elapsed 4.0s  eta 0.0s\x1b[K",
      "\n",
    ]);
  });

  it("on a TTY, redraws at most ten times a second but always shows the last step", () => {
    const out: string[] = [];
    const progress = createProgress({ total: 1000, isTTY: true, write: (t) => out.push(t), now: () => 0 });
    for (let n = 1; n <= 1000; n++) progress.update({ step: n }); // the clock stands still
    progress.done();
    expect(out).toHaveLength(3); // the first step, the last, and the newline
    expect(out[1]).toContain("step 1000/1000");
  });
});

describe("runCli", () => {
  function fakeIo(env: Record<string, string> = {}) {
    const io = { stderr: "", code: undefined as number | undefined };
    const cliIo: CliIo = { writeError: (t) => void (io.stderr += t), exit: (c) => void (io.code = c), env };
    return { io, cliIo };
  }

  it("prints a UserError without a stack and exits 2", async () => {
    const { io, cliIo } = fakeIo();
    await runCli(async () => {
      throw new UserError('--steps: expected an integer, got "x"');
    }, cliIo);
    expect(io).toEqual({ stderr: 'stow: --steps: expected an integer, got "x"\n', code: 2 });
  });

  it("words a SettingError with the flags that set it; the library's message names them in words", async () => {
    const { io, cliIo } = fakeIo();
    const error = new SettingError((name) => `${name("chunkSize")} 256 B is smaller than ${name("deviceMemory")}`);
    expect(error.message).toBe("the chunk size 256 B is smaller than the device budget");
    await runCli(async () => {
      throw error;
    }, cliIo);
    expect(io).toEqual({ stderr: "stow: --chunk-size 256 B is smaller than --device-memory\n", code: 2 });
  });

  it("exits 2 on a commander usage error, whose message commander has printed", async () => {
    const { io, cliIo } = fakeIo();
    await runCli(async () => {
      throw new CommanderError(1, "commander.unknownOption", "error: unknown option '--x'");
    }, cliIo);
    expect(io).toEqual({ stderr: "", code: 2 });
  });

  it("exits 0 after --help, which commander reports as an error with exit code 0", async () => {
    const { io, cliIo } = fakeIo();
    await runCli(async () => {
      throw new CommanderError(0, "commander.helpDisplayed", "(outputHelp)");
    }, cliIo);
    expect(io).toEqual({ stderr: "", code: 0 });
  });

  it("reports an internal error with exit 70, and its stack only under STOW_DEBUG=1", async () => {
    const bug = new TypeError("x is undefined");
    const plain = fakeIo();
    await runCli(async () => {
      throw bug;
    }, plain.cliIo);
    expect(plain.io.code).toBe(70);
    expect(plain.io.stderr).toBe(`stow: internal error: x is undefined\nstow: set STOW_DEBUG=1 to see the stack trace\n${REPORT_A_BUG}\n`);

    const debug = fakeIo({ STOW_DEBUG: "1" });
    await runCli(async () => {
      throw bug;
    }, debug.cliIo);
    expect(debug.io.code).toBe(70);
    expect(debug.io.stderr).toBe(`stow: internal error: x is undefined\n${bug.stack}\n${REPORT_A_BUG}\n`);
  });

  it("reports a filesystem error with its path and reason, exit 2", async () => {
    const { io, cliIo } = fakeIo();
    const readOnly = Object.assign(new Error("EROFS: read-only file system, open '/ro/x'"), {
      code: "EROFS",
      syscall: "open",
      path: "/ro/x",
    });
    await runCli(async () => {
      throw readOnly;
    }, cliIo);
    expect(io).toEqual({ stderr: "stow: cannot open /ro/x: the file system is read-only\n", code: 2 });
  });

  it("exits with a UserError's own status: 3 for a state that is not finite", async () => {
    const { io, cliIo } = fakeIo();
    await runCli(async () => {
      throw new NonFiniteStateError("not saved");
    }, cliIo);
    expect(io).toEqual({ stderr: "stow: not saved\n", code: 3 });
  });

  it("does not exit when main succeeds", async () => {
    const { io, cliIo } = fakeIo();
    await runCli(async () => {}, cliIo);
    expect(io).toEqual({ stderr: "", code: undefined });
  });
});
