// The training defaults, declared once in runtime/train_defaults.json for both hosts of a plan: `stow train`
// reads them here, and build.ts compiles them into the standalone `train` binary (runtime/train_main.cpp)
// as -D flags, so the two cannot drift apart.
import defaults from "../runtime/train_defaults.json" with { type: "json" };

export const TRAIN_DEFAULTS: Readonly<typeof defaults> = defaults;

/** The final learning rate of the cosine schedule when none is given. */
export function defaultMinLr(lr: number): number {
  return lr * defaults.min_lr_fraction;
}

/** Linear warm-up steps when none are given: a tenth of the run, at most 20 (the binary computes the same). */
export function defaultWarmupSteps(steps: number): number {
  return Math.min(defaults.warmup_max, Math.floor(steps * defaults.warmup_fraction));
}

/** `-DSTOW_DEFAULT_STEPS=250 ...`: what train_main.cpp is compiled with. */
export function trainDefaultsDefines(): string[] {
  return Object.entries(defaults).map(([key, value]) =>
    `-DSTOW_DEFAULT_${key.toUpperCase()}=${typeof value === "string" ? JSON.stringify(value) : String(value)}`);
}
