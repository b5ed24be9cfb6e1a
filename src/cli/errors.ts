import { CommanderError } from "commander";

/** A problem the user can fix (bad flag, missing file, type error in a model). Printed without a stack. */
export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UserError";
  }
}

/** Exit statuses, after sysexits.h: 2 for misuse (as shells and commander use it), 70 for our own bugs. */
export const EXIT_USAGE = 2;
export const EXIT_INTERNAL = 70;

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

function reportError(error: unknown, io: CliIo): number {
  if (error instanceof UserError) {
    io.writeError(`stow: ${error.message}\n`);
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
  return EXIT_INTERNAL;
}
