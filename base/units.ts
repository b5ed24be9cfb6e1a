// Byte sizes as people write and read them: parsed from flags and target files, printed in reports.
import { UserError } from "./errors.ts";

// Byte-size units, case-insensitive, following GNU dd: a bare letter (k, M, G, T) and the IEC names
// (KiB, MiB, ...) are powers of 1024, because memory is sized in those; KB, MB, GB, TB are powers of 1000,
// as disk vendors mean them. "B" or no unit means bytes.
const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 2 ** 10,
  kib: 2 ** 10,
  kb: 1e3,
  m: 2 ** 20,
  mib: 2 ** 20,
  mb: 1e6,
  g: 2 ** 30,
  gib: 2 ** 30,
  gb: 1e9,
  t: 2 ** 40,
  tib: 2 ** 40,
  tb: 1e12,
};
const SIZE = /^(\d+\.?\d*|\.\d+)\s*([a-zA-Z]*)$/;

/** A positive whole number of bytes, e.g. "4096", "512MiB", "1.5G", "2 GB". */
export function parseSize(flag: string, text: string): number {
  const usage = "a size such as 4096, 512MiB, 1.5GiB or 2GB";
  const match = SIZE.exec(text.trim());
  if (!match) throw new UserError(`${flag}: expected ${usage}, got ${JSON.stringify(text)}`);
  const [, number, unit] = match;
  const scale = SIZE_UNITS[unit.toLowerCase()];
  if (scale === undefined) {
    throw new UserError(
      `${flag}: unknown unit ${JSON.stringify(unit)} in ${JSON.stringify(text)}; use B, KiB, MiB, GiB, TiB (or k, M, G, T), KB, MB, GB, TB`,
    );
  }
  // Multiplying a decimal fraction by 1024^n is not exact in floating point (0.1 * 1024 ≠ 102.4 exactly),
  // so round away the last-bit noise before deciding whether the result is a whole number of bytes.
  const product = Number(number) * scale;
  const bytes = Math.round(product);
  if (Math.abs(product - bytes) > 1e-6 * Math.max(1, product)) {
    throw new UserError(`${flag}: ${JSON.stringify(text)} is not a whole number of bytes`);
  }
  if (bytes === 0) throw new UserError(`${flag}: size must be greater than zero`);
  if (!Number.isSafeInteger(bytes)) throw new UserError(`${flag}: ${JSON.stringify(text)} is too large`);
  return bytes;
}

const BYTE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/** Bytes in binary units with one decimal: 512 B, 1.5 KiB, 12.3 MiB. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const sign = n < 0 ? "-" : "";
  let value = Math.abs(n);
  if (value < 1024) return `${sign}${value} B`;
  let unit = 0;
  // Move up while the rounded value would print as 1024.0 or more ("1024.0 KiB" should read "1.0 MiB").
  while (unit < BYTE_UNITS.length - 1 && Number(value.toFixed(1)) >= 1024) {
    value /= 1024;
    unit++;
  }
  return `${sign}${value.toFixed(1)} ${BYTE_UNITS[unit]}`;
}
