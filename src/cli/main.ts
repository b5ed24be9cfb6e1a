// The `stow` command line: ir, plan, compile, train, generate. Flags are parsed here into typed options
// (every bad value is a UserError naming the flag); the work is done by src/driver/.
import { statSync } from "node:fs";
import { availableParallelism } from "node:os";
import { Command, Option } from "commander";
import { UserError } from "../../base/errors.ts";
import { runCli } from "./errors.ts";
import { setRuntimeEnv } from "./runtime_env.ts";
import { parseChoice, parseFloatFlag, parseIntFlag } from "./options.ts";
import { parseSize } from "../../base/units.ts";
import { CHECKPOINT_MODES } from "../../ir/passes/recompute.ts";
import { STAGE_NAMES } from "../../plan/pipeline.ts";
import { BACKEND_NAMES, backendCaps, backendsWhere, choosesPrecision } from "../../plan/backends.ts";
import type { PrepareOptions } from "../driver/prepare.ts";
import { TARGET_NAMES, resolveTarget } from "../targets/resolve_target.ts";
import type { Target } from "../targets/target.ts";
import { RUN_DEFAULTS as D, SESSION_OPTIONS, defaultMinLr, defaultText, defaultWarmupSteps } from "../../runtime/run_contract.ts";

type Raw = Record<string, string | string[] | boolean | undefined>;

// The runtime holds hyperparameters as float32: a larger value would become infinity there.
const FLOAT32_MAX = 3.4028234663852886e38;

const str = (raw: Raw, key: string) => raw[key] as string | undefined;
const int = (raw: Raw, key: string, flag: string, min = 1) =>
  raw[key] === undefined ? undefined : parseIntFlag(flag, str(raw, key)!, { min });
const float = (raw: Raw, key: string, flag: string, bounds = {}) =>
  raw[key] === undefined ? undefined : parseFloatFlag(flag, str(raw, key)!, bounds);

function withModelOptions(cmd: Command): Command {
  return cmd
    .option("--preset <name>", "model preset (default: the model's default preset)")
    .option("--set <key=value>", "override a config field (repeatable)", (v: string, acc: string[]) => [...acc, v], [])
    .option("--batch <n>", "sequences per step: the global batch, over --dp ranks and --grad-accum micro-batches (default 8)")
    .option("--seq <n>", "tokens per sequence (default: the config's seq)")
    .option("--threads <n>", "kernel and BLAS threads, per rank under --tp or --dp (default: all cores, shared by the ranks)")
    .option("--grad-clip <x>", `clip the global gradient norm; 0 disables and compiles no norm (default ${D.grad_clip})`)
    .option(
      "--checkpoint <mode>",
      "recompute in the backward: none, selective (attention), blocks, blocks:K (the first K), auto (default: auto with --device-memory, else none)",
    )
    .option(
      "--move-activations <k>",
      "keep the saved activations of the first K checkpoint regions (blocks) in host memory " +
        "between forward and backward; blocks:R recomputes the R after them (default 0; auto chooses)",
    )
    .option("--device-memory <size>", "device budget, e.g. 2GiB: the plan must fit (on the CPU backend: the arena)")
    .option("--host-memory <size>", "host budget, e.g. 20GiB: offloaded model data and data buffers must fit")
    .option(
      "--disk-memory <size>",
      "disk tier budget, e.g. 4TiB: when host memory cannot hold offloaded model data, AdamW moments go to disk (--disk-path)",
    )
    .option("--chunk-size <size>", "most parameter bytes per chunk of offloaded model data (default: the size that wastes least)")
    .option(
      "--link-gbps <x>",
      "host-device link in gigabits/s each way: the offload schedule is planned for it, and train emulates it (default: unthrottled)",
    )
    .option("--tp <n>", "tensor-parallel ranks (Megatron-LM style); train launches them with mpirun (default 1)")
    .option("--dp <n>", "data-parallel ranks, each running its rows of the global batch; with --tp, dp x tp ranks (default 1)")
    .option("--zero <stage>", "ZeRO stage over the --dp ranks: 0 replicates model data (default 0)")
    .option("--grad-accum <k>", "micro-batches per step, their gradients summed before one update (default 1)")
    .option("--fusion <on|off>", "fuse elementwise chains into generated kernels; off plans one kernel per op, for comparison (default on)")
    .option(
      "--overlap <on|off>",
      "run ZeRO 2 and 3's chunk collectives beside compute where the step fits; off blocks on each, for comparison (default on)",
    )
    .option(
      "--target <name|file>",
      `hardware the cost model predicts step times for: ${TARGET_NAMES.join(", ")} or a JSON profile ` +
        "(cpu: this machine, measured once and cached, with the MPI link under --tp or --dp; default: fixed CPU numbers)",
    )
    .option(
      "--disk-path <dir>",
      "the disk tier's folder: train keeps a scratch file there (removed at exit); with --target cpu, the probe " +
        "also measures its read and write bandwidth",
    )
    .option("--backend <name>", "cpu (default) or cuda: CUDA C++ built with nvcc, run on an NVIDIA GPU")
    .option("--precision <p>", "--backend cuda: matmuls in bf16 (bf16 inputs, fp32 accumulation; default) or fp32")
    .option(
      "--emulate",
      "--backend cuda: build for the emulated CUDA target, which runs the CUDA plan on the CPU " +
        "(CUDA semantics, stand-ins for cuBLAS and NCCL, a stream race checker)",
    );
}

/**
 * --target, measured (cpu) with the thread count the plans run with, on --disk-path's disk when given,
 * and with the MPI link between the job's ranks when there are several.
 */
function targetFlag(raw: Raw, spec = str(raw, "target"), ranks = jobRanks(raw)): Target | undefined {
  if (spec === undefined) return undefined;
  return resolveTarget(spec, { threads: threadsPerRank(raw, ranks), diskPath: diskPath(raw), ranks });
}

/** The ranks of a job: --tp times --dp. */
function jobRanks(raw: Raw): number {
  return (int(raw, "tp", "--tp") ?? 1) * (int(raw, "dp", "--dp") ?? 1);
}

/** --threads, else the cores shared by the job's ranks. */
function threadsPerRank(raw: Raw, ranks: number): number {
  return int(raw, "threads", "--threads") ?? Math.max(1, Math.floor(availableParallelism() / ranks));
}

function diskPath(raw: Raw): string | undefined {
  const dir = str(raw, "diskPath");
  if (dir !== undefined && !statSync(dir, { throwIfNoEntry: false })?.isDirectory())
    throw new UserError(`--disk-path ${dir}: not a folder (it must exist)`);
  return dir;
}

function gradClip(raw: Raw): number {
  return float(raw, "gradClip", "--grad-clip", { min: 0, max: FLOAT32_MAX }) ?? D.grad_clip;
}

/** --checkpoint MODE, or blocks:K to recompute only the first K checkpoint regions. */
function checkpointFlag(text: string): Pick<PrepareOptions, "checkpoint" | "checkpointRegions"> {
  const [mode, count] = text.split(":");
  if (count !== undefined && mode === "blocks")
    return { checkpoint: "blocks", checkpointRegions: parseIntFlag("--checkpoint blocks:K", count, { min: 0 }) };
  return { checkpoint: parseChoice("--checkpoint", text, [...CHECKPOINT_MODES, "auto"] as const) };
}

function modelOptions(raw: Raw): PrepareOptions {
  const tp = int(raw, "tp", "--tp") ?? 1;
  const dp = int(raw, "dp", "--dp") ?? 1;
  return {
    preset: str(raw, "preset"),
    set: raw.set as string[],
    batch: int(raw, "batch", "--batch"),
    seq: int(raw, "seq", "--seq"),
    // Under --tp and --dp, threads per rank: the ranks share the cores.
    threads: threadsPerRank(raw, tp * dp),
    clip: gradClip(raw) > 0,
    // A budget without a checkpoint mode lets the planner choose one that fits (unless moves are forced,
    // which auto would choose itself).
    ...checkpointFlag(str(raw, "checkpoint") ?? (raw.deviceMemory !== undefined && raw.moveActivations === undefined ? "auto" : "none")),
    moveActivations: int(raw, "moveActivations", "--move-activations", 0),
    deviceMemory: raw.deviceMemory === undefined ? undefined : parseSize("--device-memory", str(raw, "deviceMemory")!),
    hostMemory: raw.hostMemory === undefined ? undefined : parseSize("--host-memory", str(raw, "hostMemory")!),
    diskMemory: raw.diskMemory === undefined ? undefined : parseSize("--disk-memory", str(raw, "diskMemory")!),
    chunkSize: raw.chunkSize === undefined ? undefined : parseSize("--chunk-size", str(raw, "chunkSize")!),
    linkGbps: float(raw, "linkGbps", "--link-gbps", { exclusiveMin: 0 }),
    tp,
    dp,
    zero: int(raw, "zero", "--zero", 0),
    gradAccum: int(raw, "gradAccum", "--grad-accum"),
    fusion: parseChoice("--fusion", str(raw, "fusion") ?? "on", ["on", "off"] as const) === "on",
    overlap: parseChoice("--overlap", str(raw, "overlap") ?? "on", ["on", "off"] as const) === "on",
    machine: targetFlag(raw)?.machine,
    ...backendFlags(raw),
  };
}

function backendFlags(raw: Raw): Pick<PrepareOptions, "backend" | "precision" | "emulate"> {
  const backend = parseChoice("--backend", str(raw, "backend") ?? "cpu", BACKEND_NAMES);
  const caps = backendCaps(backend);
  const precision = str(raw, "precision");
  if (!caps.emulation && raw.emulate) throw new UserError(`--emulate applies to --backend ${backendsWhere((c) => c.emulation)} only`);
  const emulate = raw.emulate === true ? { emulate: true } : {};
  if (precision === undefined) return { backend, ...(choosesPrecision(caps) && { precision: caps.defaultPrecision }), ...emulate };
  if (!choosesPrecision(caps))
    throw new UserError(
      `--precision applies to --backend ${backendsWhere(choosesPrecision)} only (${caps.title} computes in ${caps.defaultPrecision})`,
    );
  return { backend, precision: parseChoice("--precision", precision, caps.precisions), ...emulate };
}

async function irCommand(model: string, raw: Raw): Promise<void> {
  const after = str(raw, "after") ?? STAGE_NAMES[STAGE_NAMES.length - 1];
  parseChoice("--after", after, STAGE_NAMES);
  const { prepare } = await import("../driver/prepare.ts");
  const { printGraph } = await import("../../ir/printer.ts");
  const { graphToJson } = await import("../../ir/json.ts");
  const { plan } = await prepare(model, modelOptions(raw));
  const graph = plan.stages.find((s) => s.name === after)!.graph;
  process.stdout.write(raw.json ? JSON.stringify(graphToJson(graph), null, 1) + "\n" : printGraph(graph));
}

async function planCommand(model: string, raw: Raw): Promise<void> {
  const { prepare } = await import("../driver/prepare.ts");
  const { planJson, planText } = await import("../driver/plan_report.ts");
  const { plan } = await prepare(model, modelOptions(raw));
  process.stdout.write(raw.json ? JSON.stringify(planJson(plan), null, 1) + "\n" : planText(plan));
  const profile = str(raw, "profile");
  if (profile) {
    const { readProfile, profileText } = await import("../driver/profile.ts");
    const { codegenBackend } = await import("../../codegen/backends/index.ts");
    const measured = readProfile(profile);
    // Profiles are measured on the CPU backend's plan (plan/backends.ts: profiling), whose hash names it.
    const { hash } = codegenBackend("cpu").emit(plan);
    if (measured.plan !== hash)
      throw new UserError(
        `--profile: ${profile} was measured on plan ${measured.plan}, not on this one (${hash}); give the flags of the run that wrote it`,
      );
    if (!raw.json) console.log(`\n${profileText(plan, measured)}`);
  }
  const trace = str(raw, "trace");
  if (trace) {
    const { predictedTimeline, writeTrace } = await import("../report/trace.ts");
    writeTrace(trace, predictedTimeline(plan), `${plan.modelPath}: one step, predicted`);
    if (!raw.json) console.log(`wrote ${trace} (open it in https://ui.perfetto.dev or chrome://tracing)`);
  }
  const html = str(raw, "html");
  if (html) {
    const { writePlanHtml } = await import("../report/plan_html.ts");
    writePlanHtml(plan, html);
    if (!raw.json) console.log(`wrote ${html}`);
  }
}

async function capacityCommand(model: string, raw: Raw): Promise<void> {
  if (raw.hostMemory === undefined)
    throw new UserError(
      "--host-memory is required: once model data is offloaded, host memory bounds the largest model (e.g. --host-memory 64GiB)",
    );
  // N GPUs of the target, data-parallel with every kind of model data sharded (ZeRO 3).
  const ranks = int(raw, "ranks", "--ranks") ?? 1;
  if (ranks > 1 && (raw.dp !== undefined || raw.zero !== undefined || raw.tp !== undefined))
    throw new UserError(`--ranks ${ranks} plans --dp ${ranks} --zero 3 itself: give --ranks, or --dp, --zero and --tp, not both`);
  const target = targetFlag(raw, str(raw, "target") ?? "cpu", Math.max(ranks, jobRanks(raw)))!;
  const {
    machine: _machine,
    deviceMemory,
    hostMemory,
    diskMemory,
    preset,
    set,
    batch,
    seq,
    ...search
  } = modelOptions({ ...raw, target: undefined, checkpoint: raw.checkpoint ?? "auto" });
  const { loadModel } = await import("../load/load_model.ts");
  const { displayPath } = await import("../load/typecheck.ts");
  const { familyWidths } = await import("../driver/family.ts");
  const { findLargest, gradAccumChoices } = await import("../driver/capacity_choices.ts");
  const { capacityJson, capacityText } = await import("../driver/capacity_report.ts");
  const { shellLine, trainCommand } = await import("./capacity_train_command.ts");
  const loaded = await loadModel(model);
  // --preset fixes the width and --grad-accum the micro-batch; otherwise capacity weighs them
  // (src/driver/capacity_choices.ts).
  const { gradAccum, ...rest } = search;
  const widths = familyWidths(loaded, { preset, set, batch, seq });
  const globalBatch = widths[0].member(1).batch;
  if (ranks > 1 && globalBatch % ranks !== 0)
    throw new UserError(`--batch ${globalBatch} is the global batch; it must split evenly over --ranks ${ranks}`);
  const budgets = {
    deviceMemory: deviceMemory ?? target.deviceMemory,
    hostMemory: hostMemory!,
    ...(diskMemory !== undefined && { diskMemory }),
  };
  const onRanks = ranks > 1 ? { ...rest, dp: ranks, zero: 3 } : rest;
  const gradAccums = gradAccum !== undefined ? [gradAccum] : gradAccumChoices(globalBatch, onRanks.dp ?? 1);
  const found = findLargest(widths, gradAccums, displayPath(loaded.path), target, budgets, onRanks, (family, k, p) =>
    process.stderr.write(
      `capacity: ${family.preset !== undefined && widths.length > 1 ? `preset ${family.preset}'s width, ` : ""}` +
        `${gradAccums.length > 1 ? `--grad-accum ${k}, ` : ""}${family.label(p.member)} ` +
        `${p.fits ? "fits" : "does not fit"} (planned in ${p.seconds.toFixed(1)} s)\n`,
    ),
  );
  const best = found.best;
  const command = trainCommand(process.argv.slice(process.argv.indexOf("capacity", 2) + 1), {
    memberFlags: best.family.flags(best.member),
    gradAccum: best.plan.decisions.gradAccum,
    ranks,
    deviceMemory: budgets.deviceMemory,
  });
  process.stdout.write(raw.json ? JSON.stringify(capacityJson(found, command), null, 1) + "\n" : capacityText(found, shellLine(command)));
}

async function compileCommand(model: string, raw: Raw): Promise<void> {
  const out = str(raw, "out");
  if (!out) throw new UserError("-o/--out: an output directory is required");
  const { prepare } = await import("../driver/prepare.ts");
  const { writeCompiled } = await import("../driver/write_compiled.ts");
  const { plan } = await prepare(model, modelOptions(raw));
  await writeCompiled(plan, out, (s) => console.log(s));
}

function trainFlags(raw: Raw) {
  const lr = float(raw, "lr", "--lr", { exclusiveMin: 0, max: FLOAT32_MAX }) ?? D.lr;
  const minLr = float(raw, "minLr", "--min-lr", { min: 0, max: FLOAT32_MAX }) ?? defaultMinLr(lr);
  if (minLr > lr) throw new UserError(`--min-lr: ${minLr} is above --lr ${lr}; the schedule decays from --lr down to --min-lr`);
  // A plain `stow train` keeps what it made in out/; --no-sample (scripts, tests) writes only what is asked.
  const save = str(raw, "save") ?? (raw.sample === false ? undefined : "out/ckpt.safetensors");
  const saveEvery = int(raw, "saveEvery", "--save-every");
  const saveEveryMinutes = float(raw, "saveEveryMinutes", "--save-every-minutes", { exclusiveMin: 0 });
  if ((saveEvery !== undefined || saveEveryMinutes !== undefined) && save === undefined)
    throw new UserError(`${saveEvery !== undefined ? "--save-every" : "--save-every-minutes"}: give --save FILE, where to save`);
  const schedules = ["cosine", "constant"] as const;
  const schedule = parseChoice("--lr-schedule", str(raw, "lrSchedule") ?? D.lr_schedule, schedules);
  const steps = int(raw, "steps", "--steps", 0) ?? D.steps;
  const disk = diskPath(raw);
  if (raw.diskMemory !== undefined && disk === undefined)
    throw new UserError("--disk-memory: give --disk-path DIR too, the folder the disk tier's file goes in");
  return {
    ...modelOptions(raw),
    diskPath: disk,
    steps,
    stopAfter: int(raw, "stopAfter", "--stop-after"),
    data: str(raw, "data"),
    init: str(raw, "init"),
    resume: str(raw, "resume"),
    save,
    saveEvery,
    saveEveryMinutes,
    keep: int(raw, "keep", "--keep"),
    metrics: str(raw, "metrics") ?? (raw.sample === false ? undefined : "out/metrics.jsonl"),
    profileSteps: int(raw, "profileSteps", "--profile-steps", 0),
    profile: str(raw, "profile"),
    trace: str(raw, "trace"),
    run: {
      lr,
      minLr,
      lrSchedule: schedule,
      warmupSteps: int(raw, "warmupSteps", "--warmup-steps", 0) ?? defaultWarmupSteps(steps),
      weightDecay: float(raw, "weightDecay", "--weight-decay", { min: 0, max: FLOAT32_MAX }) ?? D.weight_decay,
      beta1: float(raw, "beta1", "--beta1", { min: 0, max: 0.999999 }) ?? D.beta1,
      beta2: float(raw, "beta2", "--beta2", { min: 0, max: 0.999999 }) ?? D.beta2,
      eps: float(raw, "eps", "--eps", { exclusiveMin: 0, max: FLOAT32_MAX }) ?? D.eps,
      gradClip: gradClip(raw),
      seed: int(raw, "seed", "--seed", 0) ?? D.seed,
      linkGbps: float(raw, "linkGbps", "--link-gbps", { exclusiveMin: 0 }) ?? D.link_gbps,
    },
    sample:
      raw.sample === false
        ? undefined
        : {
            tokens: int(raw, "sampleTokens", "--sample-tokens") ?? 128,
            prompt: str(raw, "prompt") ?? "export function ",
            temperature: 0.8,
            topK: 40,
          },
  };
}

async function trainCommand(model: string | undefined, raw: Raw): Promise<void> {
  if (raw.init && raw.resume) throw new UserError("--init and --resume exclude each other: resume continues a run, init starts one");
  const { train } = await import("../driver/train.ts");
  const flags = trainFlags(raw);
  if (model !== undefined || !flags.resume) return train(model ?? "samples/gpt2.ts", flags);
  // `stow train --resume CKPT`: the model file and config the checkpoint names, unless flags say otherwise.
  const { readSafetensorsHeader } = await import("../checkpoint/safetensors.ts");
  const { modelOrigin } = await import("../checkpoint/model_origin.ts");
  const origin = modelOrigin(flags.resume, readSafetensorsHeader(flags.resume).metadata);
  const set =
    flags.preset === undefined && (flags.set ?? []).length === 0 ? Object.entries(origin.config).map(([k, v]) => `${k}=${v}`) : flags.set;
  await train(origin.modelPath, { ...flags, set });
}

async function generateCommand(checkpoint: string, raw: Raw): Promise<void> {
  const { generate } = await import("../driver/generate.ts");
  await generate(checkpoint, {
    prompt: str(raw, "prompt") ?? "\n",
    tokens: int(raw, "tokens", "--tokens") ?? 100,
    temperature: float(raw, "temperature", "--temperature", { min: 0 }) ?? 0.8,
    topK: int(raw, "topK", "--top-k") ?? 40,
    seed: int(raw, "seed", "--seed", 0) ?? 1337,
    threads: int(raw, "threads", "--threads") ?? availableParallelism(),
  });
}

function program(): Command {
  const cli = new Command("stow")
    .description("Compile a model written in the TypeScript DSL into a C++ training binary with a known memory plan")
    .exitOverride()
    .showHelpAfterError();

  withModelOptions(cli.command("ir").argument("<model>", "model file, e.g. samples/gpt2.ts"))
    .description("print the IR (forward, backward, optimizer)")
    .option("--after <pass>", `show the graph after this pass: ${STAGE_NAMES.join(", ")}`)
    .option("--json", "print the graph as JSON")
    .action(irCommand);

  withModelOptions(cli.command("plan").argument("<model>", "model file"))
    .description("print the memory plan, before running anything")
    .option("--json", "print the plan as JSON")
    .option("--html <file>", "also write one self-contained page with the memory timeline as an SVG chart")
    .option("--profile <file>", "set the node times a train run measured (train --profile) beside the predictions")
    .option("--trace <file>", "write the predicted step as a Chrome trace (Perfetto, chrome://tracing): a track per stream")
    .action(planCommand);

  withModelOptions(cli.command("capacity").argument("<model>", "model file"))
    .description("the largest model of the family that trains on a target (device memory, --host-memory), and its predicted speed")
    .option(
      "--ranks <n>",
      "N GPUs of the target, data-parallel at ZeRO 3 (--dp N --zero 3); --host-memory is the machine's, shared (default 1)",
    )
    .option("--json", "print the result as JSON")
    .action(capacityCommand);

  withModelOptions(cli.command("compile").argument("<model>", "model file"))
    .description("write the generated C++, plan.json and a standalone train binary")
    .addOption(new Option("-o, --out <dir>", "output directory"))
    .action(compileCommand);

  withModelOptions(cli.command("train").argument("[model]", "model file (default: the --resume checkpoint's, else samples/gpt2.ts)"))
    .description("compile, build and train; saves a checkpoint and prints a sample")
    .option("--steps <n>", `training steps; 0 saves the initialisation (default ${D.steps})`)
    .option("--stop-after <n>", "stop after n steps of this run and save (resume later with --resume)")
    .option("--lr <x>", `peak learning rate (default ${D.lr})`)
    .option("--min-lr <x>", `final learning rate of the cosine schedule (default ${defaultText(SESSION_OPTIONS.min_lr)})`)
    .option("--lr-schedule <kind>", `cosine (warm-up then cosine decay) or constant (default ${D.lr_schedule})`)
    .option("--warmup-steps <n>", `linear warm-up steps (default ${defaultText(SESSION_OPTIONS.warmup_steps)})`)
    .option("--weight-decay <x>", `AdamW decoupled weight decay on 2-D+ parameters (default ${D.weight_decay})`)
    .option("--beta1 <x>", `AdamW beta1 (default ${D.beta1})`)
    .option("--beta2 <x>", `AdamW beta2 (default ${D.beta2})`)
    .option("--eps <x>", `AdamW epsilon (default ${D.eps})`)
    .option("--seed <n>", `initialisation seed (default ${D.seed})`)
    .option("--data <file>", "text file or llm.c token file (default: the project's own source text)")
    .option("--init <file>", "start from the parameters in this safetensors file")
    .option("--resume <file>", "continue the run saved in this checkpoint")
    .option("--save <file>", "checkpoint to write at the end, on SIGINT or SIGTERM, and after an error (default out/ckpt.safetensors)")
    .option("--save-every <n>", "also save every n steps")
    .option("--save-every-minutes <m>", "also save when m minutes have passed since the last save")
    .option("--keep <k>", "keep the k newest saves, also named <stem>.step<N><ext> (default 1: only the --save file)")
    .option("--metrics <file>", "write one JSON object per step (default out/metrics.jsonl, none with --no-sample)")
    .option(
      "--profile-steps <n>",
      "profiled warm-up steps, then re-plan with the measured times (default 2 when model data is offloaded, else 0)",
    )
    .option("--profile <file>", "keep the warm-up's per-node times here (for stow plan --profile)")
    .option(
      "--trace <file>",
      "write the last profiled step as a Chrome trace (Perfetto, chrome://tracing); profiles steps 2-3 if nothing else does",
    )
    .option("--prompt <text>", "prompt of the sample printed at the end")
    .option("--sample-tokens <n>", "length of that sample, in tokens (default 128)")
    .option("--no-sample", "skip the sample (and the default checkpoint)")
    .action(trainCommand);

  cli
    .command("generate")
    .argument("<checkpoint>", "safetensors checkpoint written by stow train")
    .description("sample text from a checkpoint")
    .option("--prompt <text>", "text to continue")
    .option("--tokens <n>", "tokens to generate (default 100)")
    .option("--temperature <x>", "sampling temperature; 0 is greedy (default 0.8)")
    .option("--top-k <n>", "sample among the k most likely tokens (default 40)")
    .option("--seed <n>", "sampling seed")
    .option("--threads <n>", "threads")
    .action(generateCommand);
  return cli;
}

setRuntimeEnv();
await runCli(async () => {
  await program().parseAsync(process.argv);
});
