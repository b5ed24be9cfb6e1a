// The `train` binary's progress (runtime/core/train_main.cpp): one JSON object a line on stdout, one per event,
// which `stow train --tp` reads (src/driver/train_ranks.ts). Rank 0 reports; any rank reports its error.

/** After each step: the fields of a --metrics line, and the run's total steps. */
export interface StepEvent {
  event: "step";
  steps: number;
  step: number;
  loss: number;
  lr: number;
  grad_norm: number | null;
  tokens: number;
  tokens_per_s: number;
  step_seconds: number;
  device_peak_bytes: number;
  host_peak_bytes: number;
}

export interface SavedEvent {
  event: "saved";
  path: string;
  step: number;
}

/** A signal stopped every rank after `step` (and the state was saved, if the run saves). */
export interface StoppedEvent {
  event: "stopped";
  signal: number;
  step: number;
}

/** The run finished. When it took a step: the last loss, and the measured high-water mark beside the planned one. */
export interface EndEvent {
  event: "end";
  step: number;
  loss?: number;
  device_peak_bytes?: number;
  planned_peak_bytes?: number;
}

/** `abort`: the rank ended the whole job (the others stopped without a word). Else the ranks stopped together. */
export interface ErrorEvent {
  event: "error";
  rank: number;
  abort: boolean;
  message: string;
}

export type TrainEvent = StepEvent | SavedEvent | StoppedEvent | EndEvent | ErrorEvent;

/** The event on a line of the binary's stdout; undefined for any other line (a library's own output). */
export function parseTrainEvent(line: string): TrainEvent | undefined {
  if (!line.startsWith('{"event":')) return undefined;
  try {
    return JSON.parse(line) as TrainEvent;
  } catch {
    return undefined;
  }
}
