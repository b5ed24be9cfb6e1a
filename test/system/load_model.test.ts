import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { UserError } from "../../base/errors.ts";
import { describeImportError, loadModel } from "../../src/load/load_model.ts";
import { codeFrame } from "../../src/load/typecheck.ts";

// Paths in messages are relative to the working directory; vitest runs from the repository root.
const FIXTURES = "test/fixtures/models";

async function loadError(path: string): Promise<UserError> {
  const error = await loadModel(path).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(UserError);
  return error as UserError;
}

/** 1-based line and column of the first occurrence of `needle` in a fixture, found by reading its text. */
function positionOf(path: string, needle: string): { line: number; column: number; text: string } {
  const lines = readFileSync(path, "utf8").split("\n");
  const index = lines.findIndex((l) => l.includes(needle));
  if (index < 0) throw new Error(`${needle} not in ${path}`);
  return { line: index + 1, column: lines[index].indexOf(needle) + 1, text: lines[index] };
}

describe("loadModel", () => {
  it("loads a well-formed model and its presets", async () => {
    const { path, module } = await loadModel(`${FIXTURES}/valid.ts`);
    expect(path).toBe(resolve(FIXTURES, "valid.ts"));
    expect(Object.keys(module.presets)).toEqual(["tiny", "small"]);
    expect(module.defaultPreset).toBe("tiny");
    expect(module.build(module.presets.small)).toBe(64); // layers 4 * width 16
  });

  it("accepts a model given as the default export", async () => {
    const { module } = await loadModel(`${FIXTURES}/default_export.ts`);
    expect(module.build(module.presets.tiny)).toBe(3);
  });

  it("reports every type error with file:line:col, the TS code and a code frame", async () => {
    const file = `${FIXTURES}/type_error.ts`;
    const { message } = await loadError(file);
    const preset = positionOf(file, `layers: "two"`);
    const typo = positionOf(file, "layer *");
    expect(message).toBe(
      [
        `${file} has 2 type errors:`,
        "",
        `${file}:${preset.line}:${preset.column}: error TS2322: Type 'string' is not assignable to type 'number'.`,
        `  ${preset.line} | ${preset.text}`,
        `    | ${" ".repeat(preset.column - 1)}^~~~~~`, // under "layers", six characters
        "",
        `${file}:${typo.line}:${typo.column}: error TS2551: Property 'layer' does not exist on type 'Config'. Did you mean 'layers'?`,
        `  ${typo.line} | ${typo.text}`,
        `     | ${" ".repeat(typo.column - 1)}^~~~~`, // under "layer", five characters
      ].join("\n"),
    );
  });

  it("names a missing file", async () => {
    const { message } = await loadError(`${FIXTURES}/no_such_model.ts`);
    expect(message).toBe(`model file not found: ${FIXTURES}/no_such_model.ts`);
  });

  it("rejects a directory", async () => {
    const { message } = await loadError(FIXTURES);
    expect(message).toBe(`${FIXTURES} is not a file; expected a model file such as samples/gpt2.ts`);
  });

  it("names the missing build export", async () => {
    const { message } = await loadError(`${FIXTURES}/missing_build.ts`);
    expect(message).toBe(
      `${FIXTURES}/missing_build.ts: the module is not a model:\n` + "  `build` (a function from a config to the model) is missing",
    );
  });

  it("rejects a defaultPreset that names no preset", async () => {
    const { message } = await loadError(`${FIXTURES}/bad_default_preset.ts`);
    expect(message).toBe(`${FIXTURES}/bad_default_preset.ts: defaultPreset "huge" is not one of the presets: tiny, small`);
  });

  it("reports an exception at import time at its line in the .ts file", async () => {
    const file = `${FIXTURES}/throws_at_import.ts`;
    const { line, column } = positionOf(file, "new Error");
    const { message } = await loadError(file);
    expect(message).toBe(`${file}:${line}:${column}: width 64 is not divisible by layers 3`);
  });

  // The test above runs under vitest's module loader; this one loads the file the way bin/stow.js does
  // (tsx's loader, source maps on), which is where the .ts line numbers must hold for users.
  it("reports the .ts line under tsx, as bin/stow.js runs it", () => {
    const file = `${FIXTURES}/throws_at_import.ts`;
    const { line, column } = positionOf(file, "new Error");
    const script = [
      `import { register } from "tsx/esm/api";`,
      `process.setSourceMapsEnabled(true);`,
      `register();`,
      `const { loadModel } = await import("./src/load/load_model.ts");`,
      `try { await loadModel(process.argv[1]); } catch (e) { process.stdout.write(e.message); }`,
    ].join("\n");
    const output = execFileSync(process.execPath, ["--input-type=module", "-e", script, file], { encoding: "utf8" });
    expect(output).toBe(`${file}:${line}:${column}: width 64 is not divisible by layers 3`);
  });

  it.skipIf(!existsSync("src/dsl/index.ts"))('resolves imports from "stowage"', async () => {
    const { module } = await loadModel(`${FIXTURES}/uses_stowage.ts`);
    expect(module.defaultPreset).toBe("tiny");
  });
});

describe("describeImportError", () => {
  const file = resolve(FIXTURES, "valid.ts");

  it("says the file failed to load when no stack frame points into it", () => {
    expect(describeImportError(file, "boom")).toBe(`${FIXTURES}/valid.ts: failed to load: boom`);
    const notFound = new Error("Cannot find package 'stowage'");
    notFound.stack = "Error: Cannot find package 'stowage'\n    at packageResolve (node:internal/modules/esm/resolve:873:9)";
    expect(describeImportError(file, notFound)).toBe(`${FIXTURES}/valid.ts: failed to load: Cannot find package 'stowage'`);
  });

  it("names built-in error classes, which tell what kind of mistake it is", () => {
    const error = new TypeError("config.layers is not a function");
    error.stack = `TypeError: config.layers is not a function\n    at build (${file}:13:17)\n    at main (/elsewhere.ts:1:1)`;
    expect(describeImportError(file, error)).toBe(`${FIXTURES}/valid.ts:13:17: TypeError: config.layers is not a function`);
  });
});

describe("codeFrame", () => {
  it("puts the caret under the column and keeps tabs so it lines up", () => {
    expect(codeFrame("a\n\tlet x = y;\n", 1, 5, 1)).toBe("  2 | \tlet x = y;\n    | \t    ^");
  });

  it("cuts a span that runs past the end of the line", () => {
    expect(codeFrame("foo(bar,\n  baz)", 0, 4, 20)).toBe("  1 | foo(bar,\n    |     ^~~~");
  });
});
