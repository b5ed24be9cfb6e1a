// Renders the files generated from the run contract (runtime/run_contract.ts). The templates beside this
// file hold the shape of the code; the decisions (C literals, how each kind parses, bounds) are made here.
import path from "node:path";
import { fileURLToPath } from "node:url";
import nunjucks from "nunjucks";
import { RUN_OPTIONS, type RunOption, defaultText, isDerived, jsName } from "../run_contract.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, "..", "..");

const templates = new nunjucks.Environment(new nunjucks.FileSystemLoader(here), { autoescape: false, throwOnUndefined: true })
  // ASCII text as a C string literal (JSON's escapes are C's).
  .addFilter("cstring", (text: string) => JSON.stringify(text));

/** Generated file (relative to the repository root) -> its template. */
const OUTPUTS = {
  "runtime/core/stow_options.h": "stow_options.h.njk",
  "runtime/core/train_flags.h": "train_flags.h.njk",
  "native/stow_options_js.h": "stow_options_js.h.njk",
  "native/stow_options.ts": "stow_options.ts.njk",
} as const;

type Kind = "string" | "integer" | "number" | "choice";

function kindOf(o: RunOption): Kind {
  if (o.choices) return "choice";
  if (o.type === "const char*") return "string";
  return o.type === "float" || o.type === "double" ? "number" : "integer";
}

/** A JS number as a C literal that reads back the same double (1e-8, 0.002, 1337). */
function cNumber(value: number): string {
  const text = String(value);
  if (!Number.isFinite(value) || Number(text) !== value) throw new Error(`run contract: ${value} has no exact C literal`);
  return text;
}

/** What the option is called in the `train` binary's --help. */
function metavar(o: RunOption, kind: Kind): string {
  return o.metavar ?? { string: "FILE", integer: "N", number: "X", choice: "NAME" }[kind];
}

/** The check of a given flag's value against its declared bounds, as a C++ condition and message, or undefined. */
function boundsCheck(o: RunOption): { fails: string; expected: string } | undefined {
  if (o.min !== undefined && o.max !== undefined)
    return { fails: `v < ${cNumber(o.min)} || v > ${cNumber(o.max)}`, expected: `must lie in [${o.min}, ${o.max}]` };
  if (o.min !== undefined) return { fails: `v < ${cNumber(o.min)}`, expected: `must be >= ${o.min}` };
  return undefined;
}

function optionView(o: (typeof RUN_OPTIONS)[number], index: number) {
  const kind = kindOf(o);
  const derived = isDerived(o.default) ? o.default : undefined;
  if (derived) {
    const source = RUN_OPTIONS.findIndex((s) => s.name === derived.from);
    if (source < 0 || source > index) throw new Error(`run contract: ${o.name} follows ${derived.from}, which must be declared before it`);
  }
  const fixed = derived ? undefined : o.default;
  return {
    name: o.name,
    js: jsName(o.name),
    type: o.type,
    kind,
    session: o.session,
    doc: o.doc,
    flag: o.flag,
    metavar: metavar(o, kind),
    required: o.required === true,
    choices: o.choices ?? [],
    choiceText: (o.choices ?? []).join(", ").replace(/, ([^,]*)$/, " or $1"),
    // The fixed default as a C expression: a number, a choice's index, or nothing for an absent string.
    literal:
      kind === "choice" ? String(o.choices!.indexOf(fixed as string)) : kind === "string" ? "" : derived ? "" : cNumber(fixed as number),
    derived: derived && {
      from: derived.from,
      times: cNumber(derived.times),
      atMost: derived.atMost === undefined ? "" : cNumber(derived.atMost),
    },
    defaultText: kind === "string" ? "" : defaultText(o),
    check: boundsCheck(o),
    usage: o.flag === undefined ? "" : usageLine(o, kind),
  };
}

/** `  --steps N              total steps of the run; 0 saves the initialisation (default 500)` */
function usageLine(o: RunOption, kind: Kind): string {
  return usageRow(`${o.flag} ${metavar(o, kind)}`, o.doc + (kind === "string" ? "" : ` (default ${defaultText(o)})`));
}

function usageRow(head: string, text: string): string {
  return `  ${head.padEnd(22)} ${text}`;
}

/** Every generated file's text, by its path relative to the repository root. */
export function renderContract(): Map<string, string> {
  const options = RUN_OPTIONS.map(optionView);
  if (options.some((o) => o.choices.length > 0 && o.literal === "-1"))
    throw new Error("run contract: a choice's default is not one of its choices");
  const view = {
    options,
    session: options.filter((o) => o.session),
    loop: options.filter((o) => !o.session),
    flagged: options.filter((o) => o.flag !== undefined),
    printOptionsUsage: usageRow("--print-options", "print every option as resolved, defaults included, as one JSON object, and exit"),
  };
  return new Map(Object.entries(OUTPUTS).map(([out, template]) => [out, templates.render(template, { ...view, banner: BANNER })]));
}

const BANNER = "Generated from runtime/run_contract.ts by runtime/contract/render.ts (npm run gen:contract); do not edit.";
