// The command-line flag that sets each plan setting: how the CLI words a SettingError raised below it.
import type { Setting } from "../../base/errors.ts";

const FLAGS: Readonly<Record<Setting, string>> = {
  tp: "--tp",
  dp: "--dp",
  zero: "--zero",
  gradAccum: "--grad-accum",
  batch: "--batch",
  chunkSize: "--chunk-size",
  checkpoint: "--checkpoint",
  moveActivations: "--move-activations",
  deviceMemory: "--device-memory",
  hostMemory: "--host-memory",
  diskMemory: "--disk-memory",
};

export function flagName(setting: Setting): string {
  return FLAGS[setting];
}
