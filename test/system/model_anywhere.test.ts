// A model file outside the repository imports "stowage" and plans (issue 17: it failed with TS2307, and
// as CommonJS it got a second copy of the DSL). "stowage" is the running compiler's DSL for the type
// check and the import alike (src/load/stowage_package.ts), with or without a node_modules/stowage.
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { repoRoot, stow } from "../helpers/run.ts";

const fixture = path.join(repoRoot, "test/fixtures/models/int_movement.ts");

const made: string[] = [];
afterAll(() => made.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

/** A fresh folder outside the repository holding the fixture model as model.ts. */
function folderWithModel(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "stow-anywhere-"));
  made.push(dir);
  copyFileSync(fixture, path.join(dir, "model.ts"));
  return dir;
}

function expectPlans(dir: string) {
  const r = stow(["plan", "model.ts", "--batch", "2"], {}, dir);
  expect(r.status, r.stderr).toBe(0);
  expect(r.stdout).toMatch(/^model {6}model\.ts/);
  expect(r.stdout).toMatch(/device peak/);
}

describe("a model file outside the repository", () => {
  test("in a folder with no package.json", () => {
    expectPlans(folderWithModel());
  });

  test("in an npm package (`npm init`'s CommonJS type) that links stowage", () => {
    const dir = folderWithModel();
    writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name: "my-model", version: "1.0.0", type: "commonjs" }));
    mkdirSync(path.join(dir, "node_modules"));
    symlinkSync(repoRoot, path.join(dir, "node_modules", "stowage")); // what `npm link stowage` makes
    expectPlans(dir);
  });

  test("its helper modules load as ES modules too, and errors point at the model's line", () => {
    const dir = folderWithModel();
    writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name: "my-model", version: "1.0.0", type: "commonjs" }));
    copyFileSync(path.join(repoRoot, "test/fixtures/models/helper_shape_error.ts"), path.join(dir, "model.ts"));
    cpSync(path.join(repoRoot, "test/fixtures/models/helpers"), path.join(dir, "helpers"), { recursive: true });
    const r = stow(["plan", "model.ts"], {}, dir);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^stow: model\.ts:12:58: shape error: .*\(in the helper at helpers\/layers\.ts:12:20\)/);
  });

  test("a type error there is its own, not a missing module", () => {
    const dir = folderWithModel();
    writeFileSync(path.join(dir, "bad.ts"), 'import { arange } from "stowage";\nexport const n: string = arange;\n');
    const r = stow(["plan", "bad.ts"], {}, dir);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/bad\.ts:2:14: error TS2322/);
    expect(r.stderr).not.toMatch(/TS2307/);
  });
});
