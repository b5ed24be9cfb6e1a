// What a profiled run measured of a plan (runtime/core/profile.cpp writes it as JSON): the cost model's
// measured times and the measured timeline of reports are made from it.

export interface NodeProfile {
  /** Hash of the plan that was profiled (runtime PlanDesc.hash). */
  plan: string;
  steps: number;
  step_seconds: number[];
  /** Mean seconds per node, by node position in the training program. */
  node_seconds: number[];
  /**
   * The last profiled step, in seconds from its start: each node's start and end by position (-1: it runs
   * no kernel), and the transfer engine's jobs as [node position, stream (0 h2d, 1 d2h, 2 host), start, end].
   */
  timeline?: { node_start: number[]; node_end: number[]; jobs: [number, number, number, number][] };
}
