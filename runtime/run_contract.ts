// The run contract between TypeScript and C++, declared once: every option of a training run, with its C
// type, default, `train` binary flag and a line of documentation. runtime/contract/ generates from it the
// C ABI struct (runtime/core/stow_options.h), the addon's conversion of a JS object (native/stow_options_js.h,
// native/stow_options.ts) and the `train` binary's flags (runtime/core/train_flags.h); `stow train` reads its
// defaults here. Regenerate after an edit with `npm run gen:contract` (test/system/run_contract.test.ts checks).

/** A default that follows from another option: min(atMost, from × times), rounded down for integers. */
export interface DerivedDefault {
  from: string;
  times: number;
  atMost?: number;
}

export interface RunOption {
  /** The C type of the field; a string is `const char*` in the ABI, NULL when absent. */
  type: "const char*" | "int" | "int64_t" | "uint64_t" | "float" | "double";
  /** null: absent (a path that is not given). A choice's default is one of its names. */
  default: number | string | null | DerivedDefault;
  /** An int that holds the index of one of these names (the JS side and the flag use the name). */
  choices?: readonly string[];
  /** The `train` binary's flag; none: set by `stow train` in-process only. */
  flag?: string;
  /** The `train` binary refuses to run without it. */
  required?: boolean;
  /** Bounds the `train` binary checks on a given flag (the session checks the ABI fields again). */
  min?: number;
  max?: number;
  /** What the flag's value is called in the binary's --help; default by kind: FILE, N, X, or the choices. */
  metavar?: string;
  doc: string;
}

/** Fields of StowOptions, the C ABI struct, in its order. */
export const SESSION_OPTIONS = {
  data_path: {
    type: "const char*",
    default: null,
    flag: "--data",
    required: true,
    doc: "llm.c token file (magic 20240520, version 1); a session without one only infers",
  },
  init_path: {
    type: "const char*",
    default: null,
    flag: "--init",
    doc: "initial parameters from a safetensors file under nanoGPT names; absent: seeded",
  },
  resume_path: {
    type: "const char*",
    default: null,
    flag: "--resume",
    doc: "continue from a checkpoint written by stow_save (--save): parameters, moments, step, data position",
  },
  metrics_path: { type: "const char*", default: null, flag: "--metrics", doc: "write per-step metrics here as JSON lines" },
  seed: { type: "uint64_t", default: 1337, flag: "--seed", min: 0, doc: "initialisation seed" },
  threads: { type: "int", default: 0, flag: "--threads", min: 0, max: 4096, doc: "kernel and BLAS threads; 0: all cores" },
  steps: { type: "int64_t", default: 1000, flag: "--steps", min: 0, doc: "total steps of the run; 0 saves the initialisation" },
  lr: { type: "float", default: 0.002, flag: "--lr", doc: "peak learning rate" },
  min_lr: { type: "float", default: { from: "lr", times: 0.1 }, flag: "--min-lr", doc: "final learning rate of the cosine schedule" },
  lr_schedule: {
    type: "int",
    default: "cosine",
    choices: ["constant", "cosine"],
    flag: "--lr-schedule",
    doc: "constant, or linear warm-up then cosine decay to min_lr",
  },
  warmup_steps: {
    type: "int64_t",
    default: { from: "steps", times: 0.1, atMost: 20 },
    flag: "--warmup-steps",
    min: 0,
    doc: "linear warm-up steps of the cosine schedule",
  },
  weight_decay: { type: "float", default: 0.1, flag: "--weight-decay", doc: "AdamW weight decay" },
  beta1: { type: "float", default: 0.9, flag: "--beta1", doc: "AdamW beta1" },
  beta2: { type: "float", default: 0.95, flag: "--beta2", doc: "AdamW beta2" },
  eps: { type: "float", default: 1e-8, flag: "--eps", doc: "AdamW epsilon" },
  grad_clip: {
    type: "float",
    default: 1.0,
    flag: "--grad-clip",
    doc: "clip the global gradient norm to this; 0 disables (a plan compiled without clipping rejects > 0)",
  },
  host_memory: {
    type: "int64_t",
    default: 0,
    flag: "--host-memory",
    min: 0,
    doc: "cap on host memory in bytes (data, offloaded model data); 0: none",
  },
  disk_path: {
    type: "const char*",
    default: null,
    flag: "--disk-path",
    metavar: "DIR",
    doc: "folder for the disk tier's scratch file, which plans keeping model data on disk need (removed at exit)",
  },
  link_gbps: {
    type: "double",
    default: 0,
    flag: "--link-gbps",
    min: 0,
    doc: "emulated host-device link for offloaded model data, gigabits/s each way; 0: unthrottled",
  },
  profile_path: {
    type: "const char*",
    default: null,
    doc: "profiled warm-up: seconds per node, JSON, written here after the profiled steps",
  },
  profile_steps: { type: "int64_t", default: 0, doc: "steps profiled, after the session's first (which touches fresh memory)" },
  model_path: {
    type: "const char*",
    default: null,
    flag: "--model-file",
    doc: "the model file, which checkpoints record relative to their folder",
  },
  model_sha256: {
    type: "const char*",
    default: null,
    flag: "--model-sha256",
    metavar: "HEX",
    doc: "the model file's sha256, which checkpoints record beside it",
  },
} as const satisfies Record<string, RunOption>;

/** Options of the `train` binary's own loop (saving, stopping), which `stow train` runs in TypeScript. */
export const LOOP_OPTIONS = {
  save: {
    type: "const char*",
    default: null,
    flag: "--save",
    doc: "write a checkpoint here at the end, and on SIGINT, SIGTERM, SIGUSR1 or an error",
  },
  save_every: { type: "int64_t", default: 0, flag: "--save-every", min: 0, doc: "also save every this many steps; 0: never" },
  save_every_minutes: {
    type: "double",
    default: 0,
    flag: "--save-every-minutes",
    min: 0,
    doc: "also save when this many minutes have passed since the last save; 0: never",
  },
  keep: {
    type: "int64_t",
    default: 1,
    flag: "--keep",
    metavar: "K",
    min: 1,
    max: 1000000,
    doc: "keep the K newest saves, also named <stem>.step<N><ext> after the save file (1: the save file only)",
  },
  stop_after: {
    type: "int64_t",
    default: 0,
    flag: "--stop-after",
    min: 0,
    doc: "stop after this many steps of this run (and save); the schedule still spans steps; 0: run to the end",
  },
} as const satisfies Record<string, RunOption>;

export type SessionOptionName = keyof typeof SESSION_OPTIONS;
export type LoopOptionName = keyof typeof LOOP_OPTIONS;
export type RunOptionName = SessionOptionName | LoopOptionName;

/** Every option, the session's first, each with its name. */
export const RUN_OPTIONS: readonly (RunOption & { name: RunOptionName; session: boolean })[] = [
  ...Object.entries(SESSION_OPTIONS).map(([name, o]) => ({ ...o, name: name as RunOptionName, session: true })),
  ...Object.entries(LOOP_OPTIONS).map(([name, o]) => ({ ...o, name: name as RunOptionName, session: false })),
];

type Defaults<T> = { [K in keyof T]: T[K] extends { default: infer D } ? (D extends DerivedDefault ? never : D) : never };
/** The fixed defaults, by C name (derived ones: defaultMinLr, defaultWarmupSteps). */
export const RUN_DEFAULTS = Object.fromEntries(RUN_OPTIONS.map((o) => [o.name, o.default])) as Defaults<typeof SESSION_OPTIONS> &
  Defaults<typeof LOOP_OPTIONS>;

export function isDerived(d: RunOption["default"]): d is DerivedDefault {
  return typeof d === "object" && d !== null;
}

/** A derived default's value, given the value of the option it follows. */
export function derive(option: RunOption, from: number): number {
  const d = option.default as DerivedDefault;
  const scaled = option.type === "float" || option.type === "double" ? from * d.times : Math.floor(from * d.times);
  return d.atMost === undefined ? scaled : Math.min(d.atMost, scaled);
}

/** The final learning rate of the cosine schedule when none is given. */
export function defaultMinLr(lr: number): number {
  return derive(SESSION_OPTIONS.min_lr, lr);
}

/** Linear warm-up steps when none are given. */
export function defaultWarmupSteps(steps: number): number {
  return derive(SESSION_OPTIONS.warmup_steps, steps);
}

/** An option's default as help text: `500`, `lr * 0.1`, `steps * 0.1, at most 20`. */
export function defaultText(option: RunOption): string {
  const d = option.default;
  if (!isDerived(d)) return String(d);
  return `${d.from} * ${d.times}${d.atMost === undefined ? "" : `, at most ${d.atMost}`}`;
}

/** An option's name on the JS side: data_path -> dataPath. */
export function jsName(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** The `train` binary's flags for these values, keyed by JS name; absent values are left to the binary's defaults. */
export function trainFlagArgs(values: Partial<Record<string, string | number | undefined>>): string[] {
  return RUN_OPTIONS.flatMap((o) => {
    const value = values[jsName(o.name)];
    return o.flag === undefined || value === undefined ? [] : [o.flag, String(value)];
  });
}
