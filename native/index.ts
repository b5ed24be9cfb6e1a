// Typed front of the native addon (native/addon.cc), which runs a built plan in-process through the
// C ABI of runtime/core/stow_abi.h. The addon is loaded on first use, so commands that never run a plan
// work without it.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { NonFiniteStateError, UserError } from "../base/errors.ts";
import type { ResolvedStowOptions, StowOptions } from "./stow_options.ts";

export type { ResolvedStowOptions, StowOptions };

export interface PlanInfo {
  vocab: number;
  batch: number;
  seq: number;
  inferSeq: number;
  arenaBytes: number;
  predictedTrainPeak: number;
  predictedInferPeak: number;
  paramCount: number;
}

export interface StepResult {
  /** 1-based number of the step just taken. */
  step: number;
  loss: number;
  lr: number;
  /** NaN when clipping is off. */
  gradNorm: number;
  tokens: number;
  seconds: number;
  devicePeakBytes: number;
  hostPeakBytes: number;
  /** Bytes moved host to device and back in this step (offloaded model data). */
  h2dBytes: number;
  d2hBytes: number;
  /** The --device-memory the plan was compiled for; 0: none. */
  deviceBudgetBytes: number;
  /** Seconds compute waited for copies and host work in this step. */
  transferWaitSeconds: number;
}

export interface Session {
  info(): PlanInfo;
  step(): StepResult;
  /**
   * Atomic checkpoint: parameters, AdamW moments, step and data position. Throws NonFiniteStateError,
   * writing nothing, when the state holds a NaN or an infinity. With keep K > 1 the file is also named
   * <stem>.step<N><ext>, and the K newest of those stay.
   */
  save(path: string, keep?: number): void;
  /** tokens [inferSeq] -> logits [vocab] at `position`: the distribution of the token after tokens[position]. */
  infer(tokens: Int32Array, position: number): Float32Array;
  /** Idempotent; any later call but close() throws. */
  close(): void;
}

interface Addon {
  openPlan(libPath: string, options: StowOptions): Session;
  resolveOptions(options: StowOptions): ResolvedStowOptions;
}

const addonPath = fileURLToPath(new URL("./build/Release/stowage.node", import.meta.url));
let addon: Addon | undefined;

function loadAddon(): Addon {
  if (addon) return addon;
  if (!existsSync(addonPath)) {
    throw new UserError(`the native addon is not built (${addonPath} is missing); run \`npm run setup\``);
  }
  addon = createRequire(import.meta.url)(addonPath) as Addon;
  return addon;
}

/**
 * Errors of the plan library reach the user as UserError: a corrupt data file or a missing checkpoint
 * is theirs to fix. Messages the runtime marks "internal" are our bugs and stay plain Errors, as do
 * argument mistakes (TypeError) and use after close.
 */
function translate(error: unknown): unknown {
  const code = (error as { code?: unknown } | null)?.code;
  if (error instanceof Error && code === "STOW_NOT_FINITE") return new NonFiniteStateError(error.message);
  if (!(error instanceof Error) || (code !== "STOW_LOAD" && code !== "STOW_RUNTIME")) return error;
  if (error.message.startsWith("internal")) return error;
  return new UserError(error.message);
}

function guarded<T>(call: () => T): T {
  try {
    return call();
  } catch (error) {
    throw translate(error);
  }
}

/** Loads the plan library at libPath and opens a session on it (stow_open). */
export function openPlan(libPath: string, options: StowOptions): Session {
  const native = guarded(() => loadAddon().openPlan(libPath, options));
  return {
    info: () => guarded(() => native.info()),
    step: () => guarded(() => native.step()),
    save: (path, keep) => guarded(() => native.save(path, keep)),
    infer: (tokens, position) => guarded(() => native.infer(tokens, position)),
    close: () => native.close(),
  };
}

/** The options a plan receives for these (stow_open's StowOptions), the run contract's defaults applied. */
export function resolveOptions(options: StowOptions): ResolvedStowOptions {
  return loadAddon().resolveOptions(options);
}
