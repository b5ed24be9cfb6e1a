// What the run contract (runtime/run_contract.ts) says a run gets, worked out here from the declaration
// alone, to hold the generated C++ of the addon and the train binary to it.
import { RUN_OPTIONS, type RunOptionName, derive, isDerived } from "../../runtime/run_contract.ts";

/**
 * Every option by C name as a session receives it (a float field as its float, a choice by name),
 * given these values (by C name) and the defaults for the rest. A derived default follows the value
 * given for its source, before that is rounded to a float.
 */
export function resolvedOptions(given: Partial<Record<RunOptionName, number | string>> = {}): Record<string, number | string | null> {
  const exact: Record<string, number | string | null> = {};
  for (const o of RUN_OPTIONS)
    exact[o.name] = given[o.name] ?? (isDerived(o.default) ? derive(o, exact[o.default.from] as number) : o.default);
  return Object.fromEntries(RUN_OPTIONS.map((o) => [o.name, o.type === "float" ? Math.fround(exact[o.name] as number) : exact[o.name]]));
}

/** Only the options of the session (StowOptions), not those of the train binary's loop. */
export function sessionPart(options: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(RUN_OPTIONS.filter((o) => o.session).map((o) => [o.name, options[o.name]]));
}
