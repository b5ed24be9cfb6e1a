// Asserts that a call throws a UserError whose message matches.
import { expect } from "vitest";
import { UserError } from "../../base/errors.ts";

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
