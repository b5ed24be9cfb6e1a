// A model that checked clean is not checked again until it, or anything it imports, changes.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { UserError } from "../../base/errors.ts";
import { typecheckModel } from "../../src/load/typecheck.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "stow-typecheck-"));
const savedCache = process.env.STOW_CACHE_DIR;
process.env.STOW_CACHE_DIR = path.join(dir, "cache");
afterAll(() => {
  if (savedCache === undefined) delete process.env.STOW_CACHE_DIR;
  else process.env.STOW_CACHE_DIR = savedCache;
  rmSync(dir, { recursive: true, force: true });
});

const model = path.join(dir, "model.ts");
const helper = path.join(dir, "width.ts");
const cleanHelper = "export const width = 64;\n";
const cleanModel = 'import { width } from "./width.ts";\nexport const layers: number = width / 16;\n';

async function typeErrorOf(file: string): Promise<string> {
  const error = await typecheckModel(file).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(UserError);
  return (error as UserError).message;
}

describe("the record of models that checked clean", () => {
  test("skips an unchanged model, and checks again when the model or a file it imports changes", async () => {
    writeFileSync(helper, cleanHelper);
    writeFileSync(model, cleanModel);
    expect(await typecheckModel(model)).toBe("checked");
    expect(await typecheckModel(model)).toBe("unchanged since checked");

    // An imported file now gives the model a type error: the record must not hide it.
    writeFileSync(helper, 'export const width = "wide";\n');
    expect(await typeErrorOf(model)).toMatch(/model\.ts:2:\d+: error TS2362/);

    // Back to what checked clean: the record holds again.
    writeFileSync(helper, cleanHelper);
    expect(await typecheckModel(model)).toBe("unchanged since checked");

    writeFileSync(model, cleanModel.replace("width / 16", '"four"'));
    expect(await typeErrorOf(model)).toMatch(/model\.ts:2:\d+: error TS2322/);
    writeFileSync(model, cleanModel.replace("width / 16", "width / 8"));
    expect(await typecheckModel(model)).toBe("checked");
  });

  test("a cache folder that cannot be written only means the check runs each time", async () => {
    const other = path.join(dir, "other.ts");
    writeFileSync(other, "export const x: number = 1;\n");
    writeFileSync(path.join(dir, "not-a-folder"), "");
    process.env.STOW_CACHE_DIR = path.join(dir, "not-a-folder");
    try {
      expect(await typecheckModel(other)).toBe("checked");
      expect(await typecheckModel(other)).toBe("checked");
    } finally {
      process.env.STOW_CACHE_DIR = path.join(dir, "cache");
    }
  });
});
