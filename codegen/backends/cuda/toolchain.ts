// How the CUDA backend builds: nvcc compiles plan.cu and runtime/cuda/*.cu for the GPU architectures
// below, g++ the runtime's .cpp files (runtime/core/, runtime/comm/ and the host AdamW of runtime/cpu/:
// the same objects the CPU backend builds, from the same cache), and nvcc links, with the CUDA runtime
// static. cuBLAS is loaded at run time, so nothing else is needed to build: a machine with nvcc and no
// GPU builds the same binary a GPU machine does.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { UserError } from "../../../base/errors.ts";
import { CompileError, type Toolchain, gxxCompile, gxxLink, linkError, run, runtimeDir as repoRuntime } from "../../toolchain.ts";

/** A100 (sm_80) and H100/H200 (sm_90) machine code, and PTX for later GPUs to compile at load time. */
export const CUDA_ARCH_FLAGS = [
  "-gencode",
  "arch=compute_80,code=sm_80",
  "-gencode",
  "arch=compute_90,code=sm_90",
  "-gencode",
  "arch=compute_90,code=compute_90",
];

/** Warnings are errors, in nvcc's own passes and in the host compiler it runs. */
export const NVCC_FLAGS = [
  "-O3",
  "-std=c++17",
  "-Iruntime",
  "--extended-lambda",
  "-Werror",
  "all-warnings",
  "-Xcompiler",
  "-fPIC,-fopenmp,-fno-math-errno,-Wall,-Wextra,-Werror",
  ...CUDA_ARCH_FLAGS,
];

export const NVCC_LINK_FLAGS = ["-Xcompiler", "-fopenmp", "-cudart", "static", "-ldl"];

/**
 * Another tool's link flags (MPI's, from mpicxx --showme:link) in the form nvcc accepts: it takes -L and
 * -l itself, -Wl,... through -Xlinker (which splits at commas, as -Wl does) and anything else (-pthread)
 * through -Xcompiler.
 */
export function nvccLinkFlags(flags: readonly string[]): string[] {
  return flags.flatMap((f) => {
    if (/^-[Ll]./.test(f)) return [f];
    if (f.startsWith("-Wl,")) return ["-Xlinker", f.slice(4)];
    return ["-Xcompiler", f];
  });
}

/** nvcc: $CUDA_HOME/bin, then PATH, then /usr/local/cuda/bin. */
export function nvccCommand(): string {
  const candidates = [
    ...(process.env.CUDA_HOME ? [join(process.env.CUDA_HOME, "bin", "nvcc")] : []),
    ...(process.env.PATH ?? "")
      .split(":")
      .filter(Boolean)
      .map((d) => join(d, "nvcc")),
    "/usr/local/cuda/bin/nvcc",
  ];
  const found = candidates.find((c) => existsSync(c));
  if (!found)
    throw new UserError(
      "--backend cuda needs nvcc (the CUDA toolkit) to build; it is not in $CUDA_HOME/bin, on PATH " +
        "or in /usr/local/cuda/bin. Install the toolkit, or use --backend cpu",
    );
  return found;
}

/**
 * The emulated CUDA target: g++ compiles the .cu sources as C++ with runtime/cuda/emulate/include first
 * on the include path (its cuda_runtime.h is CUDA's API and kernel language on the CPU), warnings as
 * errors as under nvcc. #pragma unroll is nvcc's alone.
 */
export const EMULATE_CXXFLAGS = [
  "-DSTOW_CUDA_EMULATED=1",
  "-isystem",
  "runtime/cuda/emulate/include",
  "-Iruntime/cuda/emulate",
  "-Wall",
  "-Wextra",
  "-Werror",
  "-Wno-unknown-pragmas",
];

/** Fibers for CUDA threads (Boost.Context), OpenBLAS for the cuBLAS stand-in (already linked), dlopen. */
export const EMULATE_LDLIBS = ["-lboost_context", "-ldl", "-pthread"];

/**
 * The emulation's own sources: runtime/cuda/emulate/*.cpp, and with MPI its NCCL stand-in
 * (runtime/cuda/emulate/mpi/), which needs MPI's flags.
 */
export async function emulationSources(list: (dir: string, ext: string) => Promise<string[]>, mpi: boolean): Promise<string[]> {
  const dir = join(repoRuntime, "cuda", "emulate");
  return [...(await list(dir, ".cpp")), ...(mpi ? await list(join(dir, "mpi"), ".cpp") : [])];
}

let nvccCache: Promise<string> | undefined;

// nvcc's version: objects built by one CUDA toolkit are not handed to another's link.
function nvccId(): Promise<string> {
  nvccCache ??= run(nvccCommand(), ["--version"]).then((r) => {
    if (r.code !== 0) throw new Error(`nvcc --version failed:\n${r.stderr}`);
    return r.stdout;
  });
  return nvccCache;
}

/** For the GPU: .cu files go to nvcc and everything else to g++; nvcc links. */
export const NVCC: Toolchain = {
  id: async () => [await nvccId(), NVCC_FLAGS.join(" "), NVCC_LINK_FLAGS.join(" ")],
  headerDirs: [],
  async compile(source, object, extra) {
    if (!source.endsWith(".cu")) return gxxCompile(source, object, extra);
    const r = await run(nvccCommand(), [...NVCC_FLAGS, "-c", source, "-o", object]);
    if (r.code !== 0) throw new CompileError(source, r.stderr, "nvcc");
  },
  async link(args, extra) {
    const r = await run(nvccCommand(), [...args, ...NVCC_LINK_FLAGS, ...nvccLinkFlags(extra)]);
    if (r.code !== 0) throw linkError(args, r.stderr);
  },
};

const emulateDir = join(repoRuntime, "cuda", "emulate");

/**
 * For the emulated CUDA target: everything goes to g++, the .cu files (as C++) and the emulation's own
 * sources against the emulated CUDA headers.
 */
export const EMULATED: Toolchain = {
  id: async () => ["emulated CUDA", EMULATE_CXXFLAGS.join(" "), EMULATE_LDLIBS.join(" ")],
  headerDirs: [join(emulateDir, "include")],
  compile(source, object, extra) {
    const cuda = source.endsWith(".cu");
    if (!cuda && !source.startsWith(emulateDir)) return gxxCompile(source, object, extra);
    return gxxCompile(source, object, [...EMULATE_CXXFLAGS, ...extra, ...(cuda ? ["-x", "c++"] : [])]);
  },
  link: (args, extra) => gxxLink(args, [...EMULATE_LDLIBS, ...extra]),
};
