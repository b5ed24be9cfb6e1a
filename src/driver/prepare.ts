// From a model file and command-line choices to a compiled Plan: load (type-check, import), resolve the
// config, trace and run the passes. Model mistakes found while tracing become user errors that point
// at the model line, with a code frame.
import { readFileSync } from "node:fs";
import { UserError } from "../../base/errors.ts";
import { loadModel } from "../load/load_model.ts";
import { codeFrame, displayPath } from "../load/typecheck.ts";
import { TraceError } from "../dsl/trace.ts";
import { formatLoc } from "../../ir/types.ts";
import { type CompileOptions, type Plan } from "../../plan/plan.ts";
import { DoesNotFitError } from "../../plan/choose.ts";
import { compilePlan } from "./compile.ts";
import { withLeastBudget } from "./least_budget.ts";
import type { MeasuredTimes } from "../../ir/cost_model.ts";
import { type ModelChoice, type Resolved, resolveModel } from "./resolve.ts";

/** The model choice (preset, overrides, batch, seq) and every compile option but the resolved shape. */
export type PrepareOptions = ModelChoice & Omit<CompileOptions, "batch" | "seq">;

export interface Prepared {
  plan: Plan;
  resolved: Resolved;
  /** The same model and options compiled again with node times measured in a profiled warm-up. */
  replan(measured: MeasuredTimes): Plan;
}

export async function prepare(modelPath: string, opts: PrepareOptions): Promise<Prepared> {
  const loaded = await loadModel(modelPath);
  const resolved = resolveModel(loaded, opts);
  const { preset: _preset, set: _set, ...compile } = opts;
  const compileWith = (measured?: MeasuredTimes) => {
    const planWith = (changed: Partial<CompileOptions>) =>
      compilePlan(resolved.definition, displayPath(loaded.path), resolved.config, {
        ...compile,
        batch: resolved.batch,
        seq: resolved.seq,
        ...(measured && { measured }),
        ...changed,
      });
    try {
      return planWith({});
    } catch (e) {
      if (e instanceof TraceError) throw new UserError(describeTraceError(e));
      if (e instanceof DoesNotFitError) throw withLeastBudget(e, compile, planWith);
      throw e;
    }
  };
  return { plan: compileWith(), resolved, replan: compileWith };
}

export function describeTraceError(e: TraceError): string {
  if (!e.loc) return e.message;
  let frame = "";
  try {
    frame = "\n" + codeFrame(readFileSync(e.loc.file, "utf8"), e.loc.line - 1, e.loc.col - 1, 1);
  } catch {
    // The location is still useful without the source line.
  }
  return `${formatLoc(e.loc)}: ${e.message}${frame}`;
}
