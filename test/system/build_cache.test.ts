// The build driver's cache, on a trivial runtime written here (a plan defines plan_value(), the runtime
// doubles it, train_main prints it), so the test does not depend on the real runtime compiling and
// stays fast. What it checks: the outputs link and run, a rebuild is a cache hit, any change to the
// inputs is a new hash, runtime objects are reused across plans, and compiler errors surface.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildPlan } from "../../codegen/build.ts";

let dir: string;
let cache: string;
let runtimeSources: string[];
let header: string;

const plan = (value: number) => `extern "C" int plan_value() { return ${value}; }\n`;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "stow-build-"));
  cache = join(dir, "cache");
  const rt = join(dir, "rt");
  mkdirSync(rt);
  header = join(rt, "twice.h");
  writeFileSync(header, "#pragma once\nconstexpr int kFactor = 2;\n");
  writeFileSync(
    join(rt, "session.cpp"),
    '#include "twice.h"\nextern "C" int plan_value();\nextern "C" int runtime_twice() { return kFactor * plan_value(); }\n',
  );
  writeFileSync(
    join(rt, "train_main.cpp"),
    '#include <cstdio>\nextern "C" int runtime_twice();\nint main() { std::printf("%d\\n", runtime_twice()); }\n',
  );
  runtimeSources = [join(rt, "session.cpp"), join(rt, "train_main.cpp")];
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const build = (planCpp: string) => buildPlan({ planCpp, outDir: cache, runtimeSources });
const runTrain = (path: string) => execFileSync(path, { encoding: "utf8" }).trim();
const dynamicSymbols = (lib: string) => execFileSync("nm", ["-D", "--defined-only", lib], { encoding: "utf8" });
const objectTimes = () => readdirSync(join(cache, "objects")).map((f) => `${f}@${statSync(join(cache, "objects", f)).mtimeMs}`);

describe("buildPlan", () => {
  it("removes what killed builds left behind, and leaves a running build's files alone", async () => {
    await build(plan(1)); // makes the cache's folders
    const gone = spawnSync("true").pid!; // a process that has exited: its pid names no live process
    const stale = [join(cache, "builds", `.tmp-${gone}-0123456789abcdef-Xy12ab`), join(cache, "objects", `f.o.tmp-${gone}-00ff`)];
    const live = [
      join(cache, "builds", `.tmp-${process.pid}-0123456789abcdef-Zz34cd`),
      join(cache, "objects", `g.o.tmp-${process.pid}-11ee`),
    ];
    mkdirSync(stale[0]);
    writeFileSync(stale[1], "");
    mkdirSync(live[0]);
    writeFileSync(live[1], "");
    await build(plan(2));
    expect(stale.filter((p) => existsSync(p))).toEqual([]);
    expect(live.filter((p) => existsSync(p))).toEqual(live);
    for (const p of live) rmSync(p, { recursive: true });
  });

  it("builds a shared library and a train binary, then hits the cache", async () => {
    const first = await build(plan(21));
    expect(first.cached).toBe(false);
    expect(first.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(runTrain(first.trainBinPath)).toBe("42");
    const symbols = dynamicSymbols(first.libPath);
    expect(symbols).toMatch(/ T plan_value$/m);
    expect(symbols).toMatch(/ T runtime_twice$/m);
    expect(symbols).not.toMatch(/ T main$/m);

    const start = performance.now();
    const again = await build(plan(21));
    expect(performance.now() - start).toBeLessThan(1000);
    expect(again).toEqual({ ...first, cached: true });
  });

  it("gives a changed plan a new hash and reuses the runtime objects", async () => {
    const first = await build(plan(21));
    const objectsBefore = objectTimes();
    const changed = await build(plan(22));
    expect(changed.cached).toBe(false);
    expect(changed.hash).not.toBe(first.hash);
    expect(runTrain(changed.trainBinPath)).toBe("44");
    expect(objectTimes()).toEqual(objectsBefore);
    expect(runTrain(first.trainBinPath)).toBe("42");
  });

  it("gives a changed runtime header a new hash", async () => {
    const before = await build(plan(5));
    writeFileSync(header, "#pragma once\nconstexpr int kFactor = 3;\n");
    try {
      const after = await build(plan(5));
      expect(after.hash).not.toBe(before.hash);
      expect(runTrain(after.trainBinPath)).toBe("15");
    } finally {
      writeFileSync(header, "#pragma once\nconstexpr int kFactor = 2;\n");
    }
  });

  it("survives concurrent builds of the same plan", async () => {
    const [a, b] = await Promise.all([build(plan(7)), build(plan(7))]);
    expect(a.hash).toBe(b.hash);
    expect(runTrain(a.trainBinPath)).toBe("14");
    expect(readdirSync(join(cache, "builds")).filter((f) => f.startsWith(".tmp"))).toEqual([]);
  });

  it("reports a compile error with the compiler's message and keeps the source", async () => {
    const broken = 'extern "C" int plan_value() { return 1 +; }\n';
    const error: Error = await build(broken).then(
      () => expect.unreachable("the build should fail"),
      (e: Error) => e,
    );
    expect(error.message).toMatch(/error: expected primary-expression before ';' token/);
    const kept = /kept in (\S+plan\.cpp)/.exec(error.message)?.[1];
    expect(kept).toBeDefined();
    expect(readFileSync(kept!, "utf8")).toBe(broken);
    expect(error.message).toContain(kept!.replace(/plan\.cpp$/, "plan.cpp:1:"));
  });

  it("reports a link error with the linker's message", async () => {
    await expect(build('extern "C" int plan_other() { return 1; }\n')).rejects.toThrow(
      /linking \S+\/train failed:[\s\S]*undefined reference to `plan_value'/,
    );
  });
});
