// SIGINT and SIGTERM during training ask for a stop, not a death: the run finishes its step, saves, and
// exits with the status the signal would have given (130, 143). A step is one synchronous call into the
// plan, so the handlers run between steps, when the loop yields to the event loop (`between`).
export type StopSignal = "SIGINT" | "SIGTERM";

export interface StopWatch {
  /** The first stop signal received, if any. */
  readonly signal: StopSignal | undefined;
  /** Lets signal handlers run; await it between steps. */
  between(): Promise<void>;
  /** Restores the default handling. */
  dispose(): void;
}

export function watchStopSignals(onFirst: (signal: StopSignal) => void): StopWatch {
  let received: StopSignal | undefined;
  const handler = (signal: StopSignal) => {
    if (received) return;
    received = signal;
    onFirst(signal);
  };
  const signals: StopSignal[] = ["SIGINT", "SIGTERM"];
  for (const s of signals) process.on(s, handler);
  return {
    get signal() {
      return received;
    },
    between: () => new Promise((resolve) => setImmediate(resolve)),
    dispose: () => {
      for (const s of signals) process.off(s, handler);
    },
  };
}
