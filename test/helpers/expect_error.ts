// Asserts that a call throws a UserError whose message matches.
import { expect } from "vitest";
import { SettingError, UserError } from "../../base/errors.ts";
import { flagName } from "../../src/cli/flag_names.ts";

export function expectUserError(fn: () => unknown, pattern: RegExp): void {
  let error: unknown;
  try {
    fn();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(UserError);
  expect((error as Error).message).toMatch(pattern);
}

/** Asserts that a call throws a SettingError whose wording, as the CLI gives it (with flags), matches. */
export function expectSettingError(fn: () => unknown, pattern: RegExp): SettingError {
  let error: unknown;
  try {
    fn();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(SettingError);
  expect((error as SettingError).phrase(flagName)).toMatch(pattern);
  return error as SettingError;
}
