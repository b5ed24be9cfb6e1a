// The planning section (`npm run bench -- planning`): how long the planner takes by model size, on the
// family `stow capacity` searches (GPT-2's vocabulary and context at GPT-3 6.7B's width, layers grown),
// batch 4 x seq 1024 as in capacity-targets. Two plans a size: the plain step (no budget), and the step
// under the RTX 3090 profile's budget with 256 GiB of host memory and --checkpoint auto, which is what
// each member of `stow capacity --target rtx3090-24g --host-memory 256GiB` costs (model data offloaded,
// its schedule searched; the largest sizes do not fit the host and are refused after the search).
// Plans run in this process, smallest first; each reports wall and CPU seconds, and the load average
// beside them, because the machine is shared.
import gpt2 from "../samples/gpt2.ts";
import { type CompileOptions } from "../plan/plan.ts";
import { DoesNotFitError } from "../plan/choose.ts";
import { compilePlan } from "../src/driver/compile.ts";
import { GPU_TARGETS } from "../src/targets/gpus.ts";
import { GPU_STEP } from "./capacity_targets.ts";
import { loadAverage } from "./machine.ts";

export const PLANNING_LAYERS = [12, 25, 50, 100];
const RTX3090 = GPU_TARGETS["rtx3090-24g"];
const HOST_MEMORY = 256 * 2 ** 30;

export interface PlanTiming {
  layers: number;
  budget: "none" | "rtx3090-24g";
  nodes: number | null; // the training program's, when it fits
  fits: boolean;
  wall_seconds: number;
  cpu_seconds: number;
  load_average_before: number[];
}

export interface PlanningResults {
  date: string;
  step: typeof GPU_STEP;
  timings: PlanTiming[];
}

function timePlan(layers: number, budget: PlanTiming["budget"]): PlanTiming {
  const config = { ...gpt2.presets["6.7B"], layers };
  const opts: CompileOptions = {
    ...GPU_STEP,
    threads: 2,
    clip: true,
    ...(budget === "none"
      ? { checkpoint: "none" }
      : { checkpoint: "auto", deviceMemory: RTX3090.deviceMemory, hostMemory: HOST_MEMORY, machine: RTX3090.machine }),
  };
  const load = loadAverage();
  const wall = performance.now();
  const cpu = process.cpuUsage();
  let nodes: number | null = null;
  try {
    nodes = compilePlan(gpt2, "samples/gpt2.ts", config, opts).train.graph.nodes.length;
  } catch (e) {
    if (!(e instanceof DoesNotFitError)) throw e;
  }
  const used = process.cpuUsage(cpu);
  return {
    layers,
    budget,
    nodes,
    fits: nodes !== null,
    wall_seconds: (performance.now() - wall) / 1000,
    cpu_seconds: (used.user + used.system) / 1e6,
    load_average_before: load,
  };
}

export function runPlanningSection(): PlanningResults {
  const date = new Date().toISOString();
  const timings: PlanTiming[] = [];
  for (const budget of ["none", "rtx3090-24g"] as const)
    for (const layers of PLANNING_LAYERS) {
      console.log(`planning: ${layers} layers, budget ${budget}...`);
      const t = timePlan(layers, budget);
      console.log(`  ${t.wall_seconds.toFixed(1)} s (cpu ${t.cpu_seconds.toFixed(1)} s, load ${t.load_average_before.join(" ")})`);
      timings.push(t);
    }
  return { date, step: GPU_STEP, timings };
}
