// Builds a generated plan into libplan.so (run in-process by native/) and a standalone `train` binary,
// cached by content hash. Runtime sources are compiled once into objects cached by their own hash, so a
// new plan costs one compile and two links. Every output is written elsewhere and renamed into place,
// so concurrent builds of the same plan never see each other's half-written files.
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { basename, dirname, join } from "node:path";
import { isStale, tempPathFor } from "../src/util/atomic_write.ts";
import type { Backend } from "../plan/plan.ts";
import { codegenBackend } from "./backends/index.ts";
import { CXXFLAGS, CompileError, LDLIBS, type Toolchain, gxxId, listFiles, run, runtimeDir } from "./toolchain.ts";
import { cacheDir } from "../base/paths.ts";

export interface BuildOptions {
  /** The generated plan.cpp (or plan.cu), as text. */
  planCpp: string;
  /** Default cpu. */
  backend?: Backend;
  /** Cache root holding builds/ and objects/; default $STOW_CACHE_DIR, else <repo>/.stow-cache. */
  outDir?: string;
  /** Compiler processes run at once; default: the number of cores. */
  threads?: number;
  /**
   * Every runtime source to link with the plan; default: runtime/core/*.cpp, the communicator
   * (runtime/comm/) and the backend's own. train_main.cpp goes only into `train`.
   */
  runtimeSources?: string[];
  /**
   * Link the MPI communicator (runtime/comm/mpi/, for tensor parallelism) in place of the single-process
   * one (runtime/comm/comm_single.cpp); only such builds need MPI. The CUDA backend keeps it for the job's
   * ranks and host-side calls, and runs its collectives on NCCL, loaded at run time (runtime/cuda/comm_nccl.h).
   */
  mpi?: boolean;
  /**
   * With backend cuda: build for the emulated CUDA target instead of the GPU. g++ compiles the same .cu
   * sources against runtime/cuda/emulate/ (CUDA's API and kernel language on the CPU, with cuBLAS and
   * NCCL stand-ins), so the plan runs here (codegen/backends/cuda/toolchain.ts).
   */
  emulate?: boolean;
}

export interface BuildResult {
  libPath: string;
  trainBinPath: string;
  hash: string;
  /** True when the build was already in the cache and nothing was compiled. */
  cached: boolean;
}

const TRAIN_MAIN = "train_main.cpp";
const coreDir = join(runtimeDir, "core");
const commDir = join(runtimeDir, "comm");

/** MPI's compiler and linker flags, as its wrapper compiler reports them. */
export class MpiMissingError extends Error {}
let mpiFlagsCache: Promise<{ compile: string[]; link: string[] }> | undefined;
function mpiFlags(): Promise<{ compile: string[]; link: string[] }> {
  mpiFlagsCache ??= Promise.all([run("mpicxx", ["--showme:compile"]), run("mpicxx", ["--showme:link"])])
    .catch(() => [
      { code: 1, stdout: "", stderr: "" },
      { code: 1, stdout: "", stderr: "" },
    ])
    .then(([compile, link]) => {
      if (compile.code !== 0 || link.code !== 0)
        throw new MpiMissingError(
          "tensor parallelism needs MPI, and mpicxx does not run: install openmpi-bin and " + "libopenmpi-dev (npm run setup does)",
        );
      return { compile: compile.stdout.trim().split(/\s+/), link: link.stdout.trim().split(/\s+/) };
    });
  return mpiFlagsCache;
}

/** The runtime every backend links: the generic core, and the communicator (MPI's under --tp). */
async function commonSources(mpi: boolean): Promise<string[]> {
  return [
    ...(await listFiles(coreDir, ".cpp")),
    ...(mpi ? await listFiles(join(commDir, "mpi"), ".cpp") : [join(commDir, "comm_single.cpp")]),
  ];
}

export async function buildPlan(opts: BuildOptions): Promise<BuildResult> {
  const cacheRoot = opts.outDir ?? cacheDir();
  const width = Math.max(1, opts.threads ?? availableParallelism());
  const backend = codegenBackend(opts.backend ?? "cpu");
  const emulate = backend.caps.emulation && opts.emulate === true;
  const toolchain = backend.toolchain(emulate);
  const sources = opts.runtimeSources ?? [
    ...(await commonSources(opts.mpi === true)),
    ...(await backend.runtimeSources({ emulate, mpi: opts.mpi === true })),
  ];
  const mpi = opts.mpi ? await mpiFlags() : { compile: [], link: [] };
  const flagsOf = (source: string) => (basename(dirname(source)) === "mpi" ? mpi.compile : []);
  const sourceTexts = await Promise.all(sources.map((s) => readFile(s, "utf8")));
  // A runtime object depends on every header it might include: those next to it, the core's and the
  // communicator's (and the toolchain's own, such as the emulated CUDA headers).
  const headerDirs = [...new Set([coreDir, commDir, ...sources.map((s) => dirname(s)), ...toolchain.headerDirs])];
  const headers = (await Promise.all(headerDirs.map((d) => listFiles(d, ".h")))).flat();
  const toolchainHash = sha256(
    await gxxId(),
    CXXFLAGS.join(" "),
    [...LDLIBS, ...mpi.link].join(" "),
    ...(await toolchain.id()),
    ...(await Promise.all(headers.map(async (h) => `${basename(h)}\n${await readFile(h, "utf8")}`))),
  );
  const objectHashes = sourceTexts.map((text, i) => sha256(toolchainHash, flagsOf(sources[i]).join(" "), text));
  const hash = sha256(toolchainHash, opts.planCpp, ...sources.map((s, i) => `${basename(s)}\n${objectHashes[i]}`));

  const buildsDir = join(cacheRoot, "builds");
  const finalDir = join(buildsDir, hash);
  const result = { libPath: join(finalDir, "libplan.so"), trainBinPath: join(finalDir, "train"), hash };
  if (existsSync(result.libPath) && existsSync(result.trainBinPath)) return { ...result, cached: true };

  const objectsDir = join(cacheRoot, "objects");
  await mkdir(buildsDir, { recursive: true });
  await mkdir(objectsDir, { recursive: true });
  await removeStaleWork(buildsDir, objectsDir);
  // The pid in the name lets a later build tell a killed build's leftovers from a running one's.
  const work = await mkdtemp(join(buildsDir, `.tmp-${process.pid}-${hash.slice(0, 16)}-`));
  try {
    const planSource = join(work, backend.caps.planFile);
    await writeFile(planSource, opts.planCpp);
    const planObject = join(work, "plan.o");
    const objects = sources.map((_, i) => join(objectsDir, `${objectHashes[i]}.o`));
    await inParallel(width, [
      () => toolchain.compile(planSource, planObject, []),
      ...sources.map((s, i) => () => cachedCompile(toolchain, s, objects[i], flagsOf(s))),
    ]);
    const libObjects = objects.filter((_, i) => basename(sources[i]) !== TRAIN_MAIN);
    await inParallel(width, [
      () => toolchain.link(["-shared", "-o", join(work, "libplan.so"), planObject, ...libObjects], mpi.link),
      () => toolchain.link(["-o", join(work, "train"), planObject, ...objects], mpi.link),
    ]);
    await publish(work, finalDir);
  } catch (error) {
    throw await keepForInspection(error, work, `${finalDir}.failed`, backend.caps.planFile);
  }
  return { ...result, cached: false };
}

// Writes the object under a private name first: another build may be compiling the same source.
async function cachedCompile(toolchain: Toolchain, source: string, object: string, extra: string[]): Promise<void> {
  if (existsSync(object)) return;
  const partial = tempPathFor(object);
  try {
    await toolchain.compile(source, partial, extra);
    await rename(partial, object);
  } finally {
    await rm(partial, { force: true });
  }
}

// A build killed mid-way (kill -9, a power cut) leaves its work folder or a partial object behind; one
// whose process is gone is removed by the next build. Running builds' files are left alone.
async function removeStaleWork(buildsDir: string, objectsDir: string): Promise<void> {
  for (const dir of [buildsDir, objectsDir]) {
    const stale = (await readdir(dir)).filter((name) => name.includes(".tmp-") && isStale(name));
    await Promise.all(stale.map((name) => rm(join(dir, name), { recursive: true, force: true })));
  }
}

// A concurrent build of the same hash may have renamed its result into place first; its files are
// identical to ours, so ours are dropped.
async function publish(work: string, finalDir: string): Promise<void> {
  try {
    await rename(work, finalDir);
  } catch (error) {
    if (!existsSync(finalDir)) throw error;
    await rm(work, { recursive: true, force: true });
  }
}

// A runtime source that fails to compile is already on disk; the work directory holds nothing of
// interest and goes. Otherwise the generated plan (or the link) failed: its directory is kept under a
// stable name, and the compiler's messages are rewritten to point there.
async function keepForInspection(error: unknown, work: string, failedDir: string, plan: string): Promise<unknown> {
  if (!(error instanceof Error)) return error;
  if (error instanceof CompileError && !error.source.startsWith(work)) {
    await rm(work, { recursive: true, force: true });
    return error;
  }
  let kept = work;
  try {
    await rm(failedDir, { recursive: true, force: true });
    await rename(work, failedDir);
    kept = failedDir;
  } catch {
    // A concurrent failing build got there first; name our own copy instead.
  }
  const message = error.message.replaceAll(work, kept);
  return new Error(`${message}\nThe generated source is kept in ${join(kept, plan)}`);
}

// Runs jobs, at most `width` at once. After a failure no new job starts, and the error is thrown only
// once the running ones have finished, so nobody moves a directory a compiler is still writing into.
async function inParallel(width: number, jobs: (() => Promise<void>)[]): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (next < jobs.length && !failure) {
      try {
        await jobs[next++]();
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, jobs.length) }, worker));
  if (failure) throw failure.error;
}

function sha256(...parts: string[]): string {
  const h = createHash("sha256");
  for (const p of parts) h.update(`${p.length}:${p}`);
  return h.digest("hex");
}
