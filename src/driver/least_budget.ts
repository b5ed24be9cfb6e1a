// When the step does not fit the device budget, the message says what would: the smallest budget that
// fits and the flags that get there. The planner's refusal carries the plan it found to need the least
// memory; under a forced checkpoint mode, `--checkpoint auto` may fit the budget as it is (it weighs
// recomputing, moving activations and offloading model data), so it is tried first. The budget named
// is checked by planning at it, so the message never promises a fit the planner would refuse.
import type { SettingNames } from "../../base/errors.ts";
import { formatBytes } from "../../base/units.ts";
import { type CompileOptions, type Plan } from "../../plan/plan.ts";
import { DoesNotFitError } from "../../plan/choose.ts";
import { checkpointLabel } from "./moved_report.ts";

/** What a plan does, in words: what it recomputes or moves, and whether model data moves too. */
function describe(p: Plan): string {
  return `${checkpointLabel(p.checkpoint)}${p.checkpoint.offload ? ", model data offloaded to the host" : ""}`;
}

/**
 * The refusal `refused`, told what fits: `compileWith` plans the same model with changed options.
 * Returns the error to throw (the same one when nothing better can be said).
 */
export function withLeastBudget(
  refused: DoesNotFitError,
  opts: Omit<CompileOptions, "batch" | "seq">,
  compileWith: (o: Partial<CompileOptions>) => Plan,
): DoesNotFitError {
  if (refused.budget !== "device" || opts.deviceMemory === undefined) return refused;
  const budget = formatBytes(opts.deviceMemory);
  let least = refused.least;
  if (opts.checkpoint !== "auto" && opts.moveActivations === undefined) {
    try {
      const p = compileWith({ checkpoint: "auto", checkpointRegions: undefined });
      return new DoesNotFitError(
        (name) =>
          `${refused.phrase(name)}\n${name("checkpoint")} auto fits in ${name("deviceMemory")} ${budget} ` +
          `(${describe(p)}; arena ${formatBytes(p.arenaBytes)})`,
        "device",
        refused.least,
      );
    } catch (e) {
      if (!(e instanceof DoesNotFitError)) throw e;
      if (e.budget !== "device") return refused;
      least = e.least;
    }
  }
  if (least === undefined) return refused;
  const bytes = least.arenaBytes;
  const flags = (name: SettingNames) => `${name("deviceMemory")} ${bytes} ${name("checkpoint")} auto`;
  try {
    const p = compileWith({ checkpoint: "auto", checkpointRegions: undefined, moveActivations: undefined, deviceMemory: least.arenaBytes });
    return new DoesNotFitError(
      (name) =>
        `${refused.phrase(name)}\nThe smallest budget that fits: ${formatBytes(bytes)}, with ` + `\`${flags(name)}\` (${describe(p)})`,
      "device",
      least,
    );
  } catch (e) {
    if (!(e instanceof DoesNotFitError)) throw e;
    return refused;
  }
}
