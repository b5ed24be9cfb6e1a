import { CommanderError } from "commander";
import { describeFsError } from "../util/fs_error.ts";
import { EXIT_INTERNAL, EXIT_USAGE, SettingError, UserError } from "../../base/errors.ts";
import { flagName } from "./flag_names.ts";

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
  if (error instanceof SettingError) {
    io.writeError(`stow: ${error.phrase(flagName)}\n`);
    return error.exitCode;
  }
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
