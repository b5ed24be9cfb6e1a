// Whether a plan fits its budgets: the one test every search and the final choice use. A budget not
// given holds anything.

export interface Budgets {
  /** Bytes the device arena may take. */
  device?: number;
  /** Bytes offloaded model data may take in host memory. */
  host?: number;
  /** Bytes model data may take in the disk tier; without it, plans keep none there. */
  disk?: number;
}

export function fits(p: { arenaBytes: number; hostBytes: number; diskBytes: number }, budgets: Budgets): boolean {
  return p.arenaBytes <= (budgets.device ?? Infinity) && p.hostBytes <= (budgets.host ?? Infinity) && p.diskBytes <= (budgets.disk ?? 0);
}

/**
 * The device budget alone. The offload schedule search bisects on how much model data stays resident,
 * which needs a test that only ever passes for less of it; keeping more resident uses less host memory,
 * so the host budget is not such a test, and the final choice applies it (and the disk budget).
 */
export function deviceOnly(budgets: Budgets): Budgets {
  // The disk budget is the final choice's to apply too; a tier's plans are not ruled out here.
  return { device: budgets.device, ...(budgets.disk !== undefined && { disk: Infinity }) };
}
