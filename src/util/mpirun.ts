// How every MPI job of Stowage starts: a training job's ranks, and the `cpu` target's link probe.

/**
 * mpirun, allowed to run as root (containers) and to start more ranks than cores, without pinning
 * each rank to one core: the ranks share the machine's cores, each with its own --threads.
 */
export function mpirunArgs(ranks: number, command: string[]): string[] {
  return ["--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", String(ranks), ...command];
}
