// The errors every layer may raise. A UserError is a problem the user can fix and is printed without a
// stack; anything else reaching the CLI is a bug in Stowage. Passes and the planner do not know the CLI's
// flags: they raise a SettingError that phrases the problem around the setting's name, and the CLI names
// the setting by its flag (src/cli/flag_names.ts).

/**
 * Exit statuses: 2 for misuse (as shells and commander use it), 3 when training diverged and its state
 * was not saved, 128 + n when signal n stopped a run (as shells report it), 70 (sysexits.h) for our
 * own bugs.
 */
export const EXIT_USAGE = 2;
export const EXIT_NOT_FINITE = 3;
export const EXIT_INTERNAL = 70;

/** A problem the user can fix (bad flag, missing file, type error in a model). Printed without a stack. */
export class UserError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT_USAGE,
  ) {
    super(message);
    this.name = "UserError";
  }
}

/** The training state holds a NaN or an infinity, so it was not saved over a finite checkpoint. */
export class NonFiniteStateError extends UserError {
  constructor(message: string) {
    super(message, EXIT_NOT_FINITE);
    this.name = "NonFiniteStateError";
  }
}

/** A run that a signal stopped (after saving what it could); exits as a process killed by it would. */
export class StoppedBySignal extends UserError {
  constructor(message: string, signal: "SIGINT" | "SIGTERM") {
    super(message, 128 + (signal === "SIGINT" ? 2 : 15));
    this.name = "StoppedBySignal";
  }
}

/** A plan setting a pass or the planner can find wrong for this model. */
export type Setting =
  | "tp"
  | "dp"
  | "zero"
  | "gradAccum"
  | "batch"
  | "chunkSize"
  | "checkpoint"
  | "moveActivations"
  | "deviceMemory"
  | "hostMemory"
  | "diskMemory";

/** How a setting is named in a message: by its flag on the command line, in words elsewhere. */
export type SettingNames = (setting: Setting) => string;

export const SETTING_WORDS: Readonly<Record<Setting, string>> = {
  tp: "the tensor-parallel degree",
  dp: "the data-parallel degree",
  zero: "the ZeRO stage",
  gradAccum: "the micro-batches per step",
  batch: "the global batch",
  chunkSize: "the chunk size",
  checkpoint: "the checkpoint mode",
  moveActivations: "the moved activations",
  deviceMemory: "the device budget",
  hostMemory: "the host budget",
  diskMemory: "the disk tier budget",
};

/**
 * A setting's value does not work for this model. `phrase` words the problem given how settings are
 * named; the message (for callers that are not the CLI) names them in words.
 */
export class SettingError extends UserError {
  constructor(readonly phrase: (name: SettingNames) => string) {
    super(phrase((s) => SETTING_WORDS[s]));
    this.name = "SettingError";
  }
}
