// Generated from runtime/run_contract.ts by runtime/contract/render.ts (npm run gen:contract); do not edit.
// A run's options as native/index.ts takes them (StowOptions of runtime/core/stow_options.h, by JS name). An
// absent option takes the run contract's default there.

export interface StowOptions {
  /** llm.c token file (magic 20240520, version 1); a session without one only infers */
  dataPath?: string;
  /** initial parameters from a safetensors file under nanoGPT names; absent: seeded */
  initPath?: string;
  /** continue from a checkpoint written by stow_save (--save): parameters, moments, step, data position */
  resumePath?: string;
  /** write per-step metrics here as JSON lines */
  metricsPath?: string;
  /** initialisation seed (default 1337) */
  seed?: number;
  /** kernel and BLAS threads; 0: all cores (default 0) */
  threads?: number;
  /** total steps of the run; 0 saves the initialisation (default 1000) */
  steps?: number;
  /** peak learning rate (default 0.002) */
  lr?: number;
  /** final learning rate of the cosine schedule (default lr * 0.1) */
  minLr?: number;
  /** constant, or linear warm-up then cosine decay to min_lr (default cosine) */
  lrSchedule?: "constant" | "cosine";
  /** linear warm-up steps of the cosine schedule (default steps * 0.1, at most 20) */
  warmupSteps?: number;
  /** AdamW weight decay (default 0.1) */
  weightDecay?: number;
  /** AdamW beta1 (default 0.9) */
  beta1?: number;
  /** AdamW beta2 (default 0.95) */
  beta2?: number;
  /** AdamW epsilon (default 1e-8) */
  eps?: number;
  /** clip the global gradient norm to this; 0 disables (a plan compiled without clipping rejects > 0) (default 1) */
  gradClip?: number;
  /** cap on host memory in bytes (data, offloaded model data); 0: none (default 0) */
  hostMemory?: number;
  /** folder for the disk tier's scratch file, which plans keeping model data on disk need (removed at exit) */
  diskPath?: string;
  /** emulated host-device link for offloaded model data, gigabits/s each way; 0: unthrottled (default 0) */
  linkGbps?: number;
  /** profiled warm-up: seconds per node, JSON, written here after the profiled steps */
  profilePath?: string;
  /** steps profiled, after the session's first (which touches fresh memory) (default 0) */
  profileSteps?: number;
  /** the model file, which checkpoints record relative to their folder */
  modelPath?: string;
  /** the model file's sha256, which checkpoints record beside it */
  modelSha256?: string;
}

/** The options as the plan receives them, by C name: what resolveOptions() gives back. */
export interface ResolvedStowOptions {
  data_path: string | null;
  init_path: string | null;
  resume_path: string | null;
  metrics_path: string | null;
  seed: number;
  threads: number;
  steps: number;
  lr: number;
  min_lr: number;
  lr_schedule: "constant" | "cosine";
  warmup_steps: number;
  weight_decay: number;
  beta1: number;
  beta2: number;
  eps: number;
  grad_clip: number;
  host_memory: number;
  disk_path: string | null;
  link_gbps: number;
  profile_path: string | null;
  profile_steps: number;
  model_path: string | null;
  model_sha256: string | null;
}
