// The compilers a build runs, behind one interface: g++ here (every backend compiles its C++ with it),
// nvcc and the emulated CUDA target in codegen/backends/cuda/toolchain.ts. A backend chooses its
// toolchain (codegen/backends/); codegen/build.ts runs it and caches what it makes.
import { spawn } from "node:child_process";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { repoRoot } from "../base/paths.ts";

export const runtimeDir = join(repoRoot, "runtime");

// Compilers run with the repository root as working directory, so -Iruntime is the same string (and
// hash) wherever the repository lives.
// -fno-math-errno lets sqrt vectorize (AdamW: 7.8 -> 1.9 ms on 2.4M elements); no result changes.
export const CXXFLAGS = ["-O3", "-march=native", "-fno-math-errno", "-ffp-contract=off", "-fopenmp", "-std=c++17", "-fPIC", "-Iruntime"];
export const LDLIBS = ["-lopenblas", "-fopenmp"];

/** How a build compiles and links; every toolchain compiles plain C++ with g++ and CXXFLAGS. */
export interface Toolchain {
  /** What, beyond g++ and CXXFLAGS, names its output: compiler versions and flags, for the build's hash. */
  id(): Promise<string[]>;
  /** Header folders, beyond those of the sources, that its objects depend on. */
  readonly headerDirs: readonly string[];
  /** Compiles one source (extra: that source's own flags, such as MPI's). Throws a CompileError. */
  compile(source: string, object: string, extra: string[]): Promise<void>;
  /** Links objects (args: objects, -o and -shared) with extra libraries (MPI's). */
  link(args: string[], extra: string[]): Promise<void>;
}

export class CompileError extends Error {
  constructor(
    readonly source: string,
    readonly stderr: string,
    compiler: string,
  ) {
    super(`${compiler} failed on ${source}:\n${stderr}`);
  }
}

/** g++ with CXXFLAGS (and `flags` after them), one source to one object. */
export async function gxxCompile(source: string, object: string, flags: string[]): Promise<void> {
  const r = await run("g++", [...CXXFLAGS, ...flags, "-c", source, "-o", object]);
  if (r.code !== 0) throw new CompileError(source, r.stderr, "g++");
}

/** Links with g++ and LDLIBS, then `libs`. */
export async function gxxLink(args: string[], libs: string[]): Promise<void> {
  const r = await run("g++", [...args, ...LDLIBS, ...libs]);
  if (r.code !== 0) throw linkError(args, r.stderr);
}

export function linkError(args: string[], stderr: string): Error {
  return new Error(`linking ${args[args.indexOf("-o") + 1]} failed:\n${stderr}`);
}

/** g++ alone: the CPU backend's toolchain. */
export const GXX: Toolchain = {
  id: async () => [],
  headerDirs: [],
  compile: (source, object, extra) => gxxCompile(source, object, extra),
  link: (args, extra) => gxxLink(args, extra),
};

let gxxIdCache: Promise<string> | undefined;

// The compiler's version and what -march=native means on this machine: a cache shared between
// machines must not hand one CPU's objects to another.
export function gxxId(): Promise<string> {
  gxxIdCache ??= Promise.all([run("g++", ["--version"]), run("g++", ["-march=native", "-Q", "--help=target"])]).then(
    ([version, target]) => {
      if (version.code !== 0) throw new Error(`g++ --version failed:\n${version.stderr}`);
      return `${version.stdout.split("\n")[0]}\n${target.stdout}`;
    },
  );
  return gxxIdCache;
}

/** The files of a folder with an extension, sorted, as paths. */
export async function listFiles(dir: string, ext: string): Promise<string[]> {
  return (await readdir(dir))
    .filter((f) => f.endsWith(ext))
    .sort()
    .map((f) => join(dir, f));
}

export function run(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // LC_ALL=C: plain ASCII quotes in compiler messages, whatever the user's locale.
    const env = { ...process.env, LC_ALL: "C" };
    const child = spawn(cmd, args, { cwd: repoRoot, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", (e) => reject(new Error(`cannot run ${cmd}: ${e.message}`)));
    child.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}
