// The plan to run, of those the search made; or, when none fits, the error that says what would.
import { SettingError, type SettingNames } from "../base/errors.ts";
import { formatBytes } from "../base/units.ts";
import { formatLoc } from "../ir/types.ts";
import type { CheckpointMode } from "../ir/passes/recompute.ts";
import { type Budgets, fits } from "./fits.ts";
import type { Candidate, PlanCandidate } from "./plan.ts";

/** The step does not fit the device or host budget: a user error that callers searching for a fit can tell apart. */
export class DoesNotFitError extends SettingError {
  constructor(
    phrase: (name: SettingNames) => string,
    readonly budget: "device" | "host",
    readonly least?: Candidate,
    /** When the host budget refuses: the least host memory an offloaded plan that fits the device needs. */
    readonly hostNeed?: number,
  ) {
    super(phrase);
    this.name = "DoesNotFitError";
  }
}

/**
 * The plan to run: the requested mode, or under auto the least predicted step time among those that fit.
 * `noOffload`: why model data was not offloaded, which a refusal then says.
 */
export function choosePlan(
  plans: PlanCandidate[],
  budgets: Budgets,
  requested: CheckpointMode | "auto",
  noOffload?: (name: SettingNames) => string,
): PlanCandidate {
  const budget = budgets.device;
  if (budget === undefined) {
    if (requested === "auto")
      throw new SettingError((name) => `${name("checkpoint")} auto needs a budget to fit: give ${name("deviceMemory")}`);
    return plans[0];
  }
  const hostBudget = budgets.host ?? Infinity;
  const fitting = plans.filter((p) => fits(p, budgets));
  // The least predicted step time (recompute, activations and model data moved over the link all show
  // in it), then the least recompute, the least traffic and the least memory. Offloaded plans are only
  // here when no plan that keeps model data on the device and moves nothing fits.
  const cost = (c: Candidate) => [c.predicted.seconds, c.recomputeFlops, c.transferBytes, c.arenaBytes];
  // Times that differ only by rounding (the same work summed in another order) are a tie.
  const differ = (x: number, y: number) => Math.abs(x - y) > 1e-9 * Math.max(Math.abs(x), Math.abs(y));
  const cheaper = (a: Candidate, b: Candidate) => {
    const [x, y] = [cost(a), cost(b)];
    const i = x.findIndex((v, k) => differ(v, y[k]));
    return i >= 0 && x[i] < y[i];
  };
  if (fitting.length > 0) return fitting.reduce((best, p) => (cheaper(p.checkpoint, best.checkpoint) ? p : best));
  const offloaded = plans.filter((p) => p.checkpoint.offload && p.checkpoint.arenaBytes <= budget);
  // Host memory holds what the disk tier leaves it, but the tier is too small for the model data moved there.
  const diskShort = offloaded.filter((p) => p.hostBytes <= hostBudget);
  if (diskShort.length > 0) {
    const smallest = Math.min(...diskShort.map((p) => p.diskBytes));
    throw new DoesNotFitError(
      (name) =>
        `the model data moved to disk needs ${formatBytes(smallest)} (${smallest} bytes), more than ${name("diskMemory")} ` +
        `${formatBytes(budgets.disk ?? 0)}`,
      "host",
    );
  }
  if (offloaded.length > 0) {
    const least = offloaded.reduce((best, p) => (p.hostBytes < best.hostBytes ? p : best));
    const smallest = least.hostBytes;
    const activations = least.checkpoint.movedBytes;
    throw new DoesNotFitError(
      (name) =>
        activations === 0
          ? `the model data does not fit in ${name("hostMemory")} ${formatBytes(hostBudget)}: offloaded to the host, ` +
            `parameters, gradients and AdamW states need ${formatBytes(smallest)} (${smallest} bytes)`
          : `the step does not fit in ${name("hostMemory")} ${formatBytes(hostBudget)}: with its model data offloaded, it ` +
            `needs ${formatBytes(smallest)} (${smallest} bytes) of host memory, ${formatBytes(activations)} of it for the ` +
            `activations moved out of the device and ${formatBytes(smallest - activations)} for parameters, gradients ` +
            `and AdamW states`,
      "host",
      undefined,
      smallest,
    );
  }
  const least = plans.reduce((best, p) => (p.checkpoint.arenaBytes < best.checkpoint.arenaBytes ? p : best));
  const consumers = [...least.train.memory.buffers]
    .sort((a, b) => b.bytes - a.bytes)
    .slice(0, 5)
    .map((b) => `  ${formatBytes(b.bytes).padStart(10)}  ${b.kind} from ${b.node.op} at ${formatLoc(b.node.loc)}`);
  throw new DoesNotFitError(
    (name) =>
      `the step does not fit in ${name("deviceMemory")} ${formatBytes(budget)}: it needs at least ` +
      `${formatBytes(least.checkpoint.arenaBytes)} (${least.checkpoint.arenaBytes} bytes, with ${name("checkpoint")} ${least.checkpoint.mode}` +
      `${least.checkpoint.offload ? " and model data offloaded to the host" : ""})` +
      `${noOffload ? `; model data was not offloaded to the host: ${noOffload(name)}` : ""}. Largest temporaries:\n${consumers.join("\n")}`,
    "device",
    least.checkpoint,
  );
}
