import { CommanderError } from "commander";
import { describeFsError } from "../util/fs_error.ts";

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
  constructor(message: string, readonly exitCode: number = EXIT_USAGE) {
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

/** What runCli touches in the outside world; tests replace it. */
export interface CliIo {
  writeError(text: string): void;
  exit(code: number): void;
  env: Record<string, string | undefined>;
}

const processIo: CliIo = {
  writeError: (text) => process.stderr.write(text),
  exit: (code) => process.exit(code),
  env: process.env,
};

/**
 * Runs the CLI's main function and turns whatever it throws into a message and an exit status.
 * A stack trace is shown only for internal errors, and only when STOW_DEBUG=1.
 */
export async function runCli(main: () => Promise<void>, io: CliIo = processIo): Promise<void> {
  try {
    await main();
  } catch (error) {
    io.exit(reportError(error, io));
  }
}

export const REPORT_A_BUG =
  "stow: this is a bug in Stowage, not in your model or flags: please report it with the command line, " +
  "the output under STOW_DEBUG=1 and, if you can, the model file";

function reportError(error: unknown, io: CliIo): number {
  if (error instanceof UserError) {
    io.writeError(`stow: ${error.message}\n`);
    return error.exitCode;
  }
  const fsProblem = describeFsError(error);
  if (fsProblem) {
    io.writeError(`stow: ${fsProblem}\n`);
    return EXIT_USAGE;
  }
  if (error instanceof CommanderError) {
    // Commander has already printed its message; --help and --version also arrive here, with exit code 0.
    return error.exitCode === 0 ? 0 : EXIT_USAGE;
  }
  const message = error instanceof Error ? error.message : String(error);
  io.writeError(`stow: internal error: ${message}\n`);
  if (io.env.STOW_DEBUG === "1" && error instanceof Error && error.stack) {
    io.writeError(`${error.stack}\n`);
  } else {
    io.writeError("stow: set STOW_DEBUG=1 to see the stack trace\n");
  }
  io.writeError(`${REPORT_A_BUG}\n`);
  return EXIT_INTERNAL;
}
