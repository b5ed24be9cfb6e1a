import { createRequire } from "node:module";
import { dirname, relative } from "node:path";
import type { Project, ts as TypeScript } from "ts-morph";
import { UserError } from "../../base/errors.ts";
import { DSL_ENTRY } from "./stowage_package.ts";
import { checkedCleanBefore, recordCheckedClean } from "./typecheck_record.ts";

// Type-checks a model file before it runs, so that a mistake is reported at its line with the compiler's
// words instead of surfacing later as a wrong shape or an undefined deep inside tracing.

/** More than this many errors is usually one mistake repeated; the first ones are what the user needs. */
const MAX_REPORTED = 20;

let cached: { project: Project; ts: typeof TypeScript } | undefined;

/**
 * Throws a UserError listing the model file's type errors (`path:line:col: error TSxxxx: message` and a code
 * frame), with paths relative to the working directory. Only the model file itself is diagnosed: the library
 * files it imports are read for their types but not checked, which keeps this to about a second. A model
 * that checked clean before, with nothing it reads changed since, is not checked again
 * (typecheck_record.ts). Says which happened.
 */
export async function typecheckModel(absolutePath: string): Promise<"checked" | "unchanged since checked"> {
  if (checkedCleanBefore(absolutePath)) return "unchanged since checked";
  const { project, ts } = await getProject();
  // Files read by an earlier check in this process may have changed since: read them all again.
  for (const file of project.getSourceFiles()) file.refreshFromFileSystemSync();
  const sourceFile = project.getSourceFile(absolutePath) ?? project.addSourceFileAtPath(absolutePath);
  project.resolveSourceFileDependencies();

  const errors = sourceFile
    .getPreEmitDiagnostics()
    .map((d) => d.compilerObject)
    .filter((d) => d.category === ts.DiagnosticCategory.Error);
  if (errors.length === 0) {
    recordCheckedClean(
      absolutePath,
      project.getSourceFiles().map((file) => ({ path: file.getFilePath(), text: file.getFullText() })),
    );
    return "checked";
  }

  const shown = errors.slice(0, MAX_REPORTED).map((d) => formatDiagnostic(ts, d));
  if (errors.length > shown.length) shown.push(`... and ${errors.length - shown.length} more`);
  const count = errors.length === 1 ? "a type error" : `${errors.length} type errors`;
  throw new UserError(`${displayPath(absolutePath)} has ${count}:\n\n${shown.join("\n\n")}`);
}

// One Project per process: the lib and @types/node declarations are parsed once however many models are
// checked. ts-morph is imported here, not at the top, so that commands that load no model (stow --help)
// do not pay the half second that loading the TypeScript compiler takes.
async function getProject(): Promise<NonNullable<typeof cached>> {
  if (cached) return cached;
  const { Project, ts } = await import("ts-morph");
  const nodeTypes = findNodeTypes();
  const project = new Project({
    skipAddingFilesFromTsConfig: true,
    compilerOptions: {
      // As in tsconfig.json, except: lib is ES2022 without the DOM (a model runs under Node, and parsing the
      // DOM declarations costs a third of the check), and @types/node is located from this package, not
      // from wherever the user runs stow.
      target: ts.ScriptTarget.ES2022,
      lib: ["lib.es2022.d.ts"],
      module: ts.ModuleKind.ESNext,
      moduleResolution: ts.ModuleResolutionKind.Bundler,
      allowImportingTsExtensions: true,
      noEmit: true,
      strict: true,
      esModuleInterop: true,
      skipLibCheck: true,
      resolveJsonModule: true,
      // "stowage" is this compiler's DSL wherever the model file lives, as at run time (stowage_package.ts).
      paths: { stowage: [DSL_ENTRY] },
      types: nodeTypes ? ["node"] : [],
      typeRoots: nodeTypes ? [nodeTypes] : [],
    },
  });
  cached = { project, ts };
  return cached;
}

/** The @types folder that holds @types/node, as seen from this package; undefined if it is not installed. */
function findNodeTypes(): string | undefined {
  try {
    const packageJson = createRequire(import.meta.url).resolve("@types/node/package.json");
    return dirname(dirname(packageJson));
  } catch {
    return undefined;
  }
}

function formatDiagnostic(ts: typeof TypeScript, diagnostic: TypeScript.Diagnostic): string {
  const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n");
  const head = `error TS${diagnostic.code}: ${message}`;
  const file = diagnostic.file;
  if (!file || diagnostic.start === undefined) return head;
  const { line, character } = file.getLineAndCharacterOfPosition(diagnostic.start);
  const location = `${displayPath(file.fileName)}:${line + 1}:${character + 1}`;
  return `${location}: ${head}\n${codeFrame(file.text, line, character, diagnostic.length ?? 1)}`;
}

/**
 * The offending source line with a caret under the column and tildes under the rest of the span:
 *   12 | const x: number = "a";
 *      |       ^
 */
export function codeFrame(text: string, line: number, column: number, length: number): string {
  const source = text.split(/\r?\n/)[line] ?? "";
  const gutter = String(line + 1);
  const spanEnd = Math.min(source.length, column + Math.max(1, length));
  // Keep tabs as tabs in the marker line so the caret lines up however wide the terminal draws a tab.
  const indent = source.slice(0, column).replace(/[^\t]/g, " ");
  const marker = `${indent}^${"~".repeat(Math.max(0, spanEnd - column - 1))}`;
  return `  ${gutter} | ${source}\n  ${" ".repeat(gutter.length)} | ${marker}`;
}

export function displayPath(absolutePath: string): string {
  return relative(process.cwd(), absolutePath) || absolutePath;
}
