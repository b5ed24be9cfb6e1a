// A target: the hardware a plan is judged and timed for. Its device memory is the budget `stow capacity`
// fits plans into; its machine is what the cost model (ir/cost_model.ts) predicts step times with, the
// same model the planner uses to choose an offload schedule.
import type { Machine } from "../../ir/cost_model.ts";

export interface Target {
  /** The name it was asked for by: a named profile, `cpu`, or a JSON file's path. */
  name: string;
  /** What it is, in a few words, for reports. */
  description: string;
  /** Bytes of device memory a plan may use (the card's memory less what the driver and libraries take). */
  deviceMemory: number;
  machine: Machine;
}
