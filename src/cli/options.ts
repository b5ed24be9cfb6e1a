import { UserError } from "../../base/errors.ts";

// Parsers for command-line values. Each names the flag in its error, so the user knows which one to fix.
// Number() alone is too forgiving ('' is 0, '0x10' is 16, ' 3 ' is 3), so each parser first matches a
// strict pattern and only then converts.

export interface Bounds {
  min?: number;
  max?: number;
}

const INTEGER = /^[+-]?\d+$/;
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

export function parseIntFlag(flag: string, text: string, bounds: Bounds = {}): number {
  if (!INTEGER.test(text)) throw new UserError(`${flag}: expected an integer, got ${quote(text)}`);
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new UserError(`${flag}: ${text} is too large`);
  checkBounds(flag, value, bounds);
  return value;
}

export interface FloatBounds extends Bounds {
  /** The value must be strictly greater than this (a learning rate must be > 0, not >= 0). */
  exclusiveMin?: number;
}

export function parseFloatFlag(flag: string, text: string, bounds: FloatBounds = {}): number {
  if (!DECIMAL.test(text)) throw new UserError(`${flag}: expected a number, got ${quote(text)}`);
  const value = Number(text);
  if (!Number.isFinite(value)) throw new UserError(`${flag}: ${text} is out of range`);
  if (bounds.exclusiveMin !== undefined && !(value > bounds.exclusiveMin)) {
    throw new UserError(`${flag}: must be greater than ${bounds.exclusiveMin}, got ${text}`);
  }
  checkBounds(flag, value, bounds);
  return value;
}

function checkBounds(flag: string, value: number, { min, max }: Bounds): void {
  if (min !== undefined && value < min) throw new UserError(`${flag}: must be at least ${min}, got ${value}`);
  if (max !== undefined && value > max) throw new UserError(`${flag}: must be at most ${max}, got ${value}`);
}

/**
 * Applies repeated `--set key=value` to a model config and returns the new config. Every key must already be
 * a field of the config, so a typo is an error instead of a silently ignored setting. A field the preset
 * holds as an integer (a size, a count) takes a positive integer; any other (an epsilon, a RoPE base) takes
 * a positive number, e.g. 1e-6. A key given twice takes its last value, as flags usually do.
 */
export function parseSetOverrides<T extends Record<string, number>>(list: readonly string[], known: T): T {
  const config: Record<string, number> = { ...known };
  for (const item of list) {
    const eq = item.indexOf("=");
    if (eq <= 0) throw new UserError(`--set: expected key=value, got ${quote(item)}`);
    const key = item.slice(0, eq).trim();
    if (!Object.hasOwn(known, key)) {
      const fields = Object.keys(known).join(", ");
      throw new UserError(`--set: unknown config field ${quote(key)}; the config has: ${fields}`);
    }
    const flag = `--set ${key}`;
    const text = item.slice(eq + 1).trim();
    const value = parseFloatFlag(flag, text);
    if (Number.isInteger(known[key])) {
      if (!Number.isInteger(value)) throw new UserError(`${flag}: expected an integer (the preset's ${key} is ${known[key]}), got ${text}`);
      if (!Number.isSafeInteger(value)) throw new UserError(`${flag}: ${text} is too large`);
      checkBounds(flag, value, { min: 1 });
    } else if (!(value > 0)) {
      throw new UserError(`${flag}: must be greater than 0, got ${text}`);
    }
    config[key] = value;
  }
  return config as T;
}

export function parseChoice<T extends string>(flag: string, text: string, choices: readonly T[]): T {
  const choice = choices.find((c) => c === text);
  if (choice === undefined) {
    throw new UserError(`${flag}: expected one of ${choices.join(", ")}, got ${quote(text)}`);
  }
  return choice;
}

function quote(text: string): string {
  return JSON.stringify(text);
}
