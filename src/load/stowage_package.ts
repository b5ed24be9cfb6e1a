// Where a model file's `import ... from "stowage"` leads: always to the DSL of the compiler that runs it
// (this checkout's src/dsl/index.ts, package.json's "exports"), wherever the model file lives.
//
// Why not Node's own resolution: a model outside this repository has no "stowage" in reach unless its
// folder has a node_modules/stowage, and where it has one, that may be another copy of the package (an
// `npm install` of a path or a tarball, another version). A second copy of the DSL is a second tracing
// context that the compiler never opens, so the model's first op would fail; and the IR it builds must
// be this compiler's anyway. So both the type check (a `paths` entry, typecheck.ts) and the import (a
// resolve hook registered by bin/stow.js) map "stowage" to this DSL. A node_modules/stowage (`npm link
// stowage`, or a path dependency) is still what an editor reads for its types; for the CLI it changes
// nothing.
import { register } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";

/** The DSL's entry point: what "stowage" (and "stowage/...": nothing else is exported) resolves to. */
export const DSL_ENTRY = fileURLToPath(new URL("../dsl/index.ts", import.meta.url));

/**
 * The resolve hook, run on Node's loader thread: "stowage" is the DSL. And a TypeScript file outside
 * node_modules loads as an ES module, as its import syntax says, even where Node would load it as
 * CommonJS (a folder with no package.json, or the `"type": "commonjs"` that `npm init` writes): as
 * CommonJS it would get a second copy of the DSL, or none. (A model that uses require or __dirname must
 * use their ES forms: import, import.meta.dirname.) A .cts file stays CommonJS.
 */
const HOOKS = `
let dsl;
export function initialize(data) { dsl = data.dsl; }
export async function resolve(specifier, context, next) {
  // The DSL's URL goes down the chain as the specifier, so tsx resolves it (and then loads it) as its own.
  const result = await next(specifier === "stowage" ? dsl : specifier, context);
  // tsx marks a file it will load as CommonJS with a query (tsx-commonjs-...); the plain URL is the file.
  const file = /^(file:[^?]*?\\.tsx?)(?:%3F|\\?|$)/.exec(result.url);
  if (result.format === "commonjs" && file && !file[1].includes("/node_modules/")) return { url: file[1], format: "module" };
  return result;
}
`;

let registered = false;

/** Makes every later import of "stowage" load DSL_ENTRY (once per process; after tsx's hooks, so before them). */
export function resolveStowageToThisCompiler(): void {
  if (registered) return;
  registered = true;
  register(`data:text/javascript,${encodeURIComponent(HOOKS)}`, import.meta.url, { data: { dsl: pathToFileURL(DSL_ENTRY).href } });
}
