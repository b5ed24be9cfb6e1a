// The verdicts and the summary table of scripts/gpu-check.sh, from the metrics (one JSON object per
// step) and plan.json files it left in its output directory. Exits 1 if any check failed.
//   npx tsx scripts/gpu_check_summary.ts out/gpu-check
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

const out = process.argv[2];
if (!out) throw new Error("usage: gpu_check_summary.ts OUTDIR");

type Step = { step: number; loss: number; tokens: number; step_seconds: number; device_peak_bytes: number; h2d_bytes: number };

function metrics(name: string): Step[] {
  const file = join(out, `${name}.jsonl`);
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
}

function planOf(name: string): { param_count: number; config: Record<string, number> } {
  return JSON.parse(readFileSync(join(out, name, "plan.json"), "utf8"));
}

/** Tokens per second over the steps after the first (which allocates and warms up). */
function throughput(steps: Step[]): number {
  const timed = steps.length > 1 ? steps.slice(1) : steps;
  return timed.reduce((s, m) => s + m.tokens, 0) / timed.reduce((s, m) => s + m.step_seconds, 0);
}

/** Dense bf16 tensor-core peak of the card, FLOP/s (NVIDIA's data sheets, without sparsity). */
function bf16Peak(gpu: string): number | undefined {
  if (process.env.GPU_PEAK_TFLOPS) return Number(process.env.GPU_PEAK_TFLOPS) * 1e12;
  if (/H100.*PCIe/i.test(gpu)) return 756e12;
  if (/H100 NVL/i.test(gpu)) return 835e12;
  if (/H100|H200|GH200/i.test(gpu)) return 989e12;
  if (/A100/i.test(gpu)) return 312e12;
  return undefined;
}

const rows: [string, string, string][] = [];
let failed = false;
const verdict = (check: string, ok: boolean, detail: string) => {
  rows.push([check, ok ? "PASS" : "FAIL", detail]);
  failed ||= !ok;
};

// Losses against the CPU backend's, step by step.
const cpu = metrics("mini_cpu");
const miniRuns = [
  ["mini_fp32", 1e-4, "fp32"],
  ["mini_bf16", 2e-2, "bf16"],
  ["mini_moved", 1e-4, "fp32, activations moved"],
] as const;
for (const [name, tolerance, label] of miniRuns) {
  const gpu = metrics(name);
  const worst = Math.max(...cpu.map((c, i) => (gpu[i] ? Math.abs(gpu[i].loss - c.loss) / Math.abs(c.loss) : Infinity)));
  const ok = cpu.length === 10 && gpu.length === 10 && worst <= tolerance;
  verdict(
    `mini, 10 losses, GPU ${label} vs CPU`,
    ok,
    `worst relative difference ${worst.toExponential(2)} (limit ${tolerance}); final loss CPU ${cpu.at(-1)?.loss.toFixed(5)}, GPU ${gpu.at(-1)?.loss.toFixed(5)}`,
  );
}

// 124M: tokens/s and model FLOPs utilisation, with nanoGPT's count of 6N + 12 L d T FLOPs a token.
const gpu = readFileSync(join(out, "gpu_name"), "utf8").trim();
const small = metrics("gpt124m");
if (small.length > 0) {
  const { param_count: n, config } = planOf("gpt124m");
  const flopsPerToken = 6 * n + 12 * config.layers * config.dim * config.seq;
  const rate = throughput(small);
  const peak = bf16Peak(gpu);
  const mfu = peak
    ? `, MFU ${((100 * rate * flopsPerToken) / peak).toFixed(1)}% of ${(peak / 1e12).toFixed(0)} TFLOP/s`
    : ", MFU n/a (set GPU_PEAK_TFLOPS)";
  verdict(
    "124M, batch 16 x 1024, bf16",
    Number.isFinite(rate) && small.every((m) => Number.isFinite(m.loss)),
    `${Math.round(rate).toLocaleString("en-US")} tokens/s${mfu}; peak ${(small.at(-1)!.device_peak_bytes / 2 ** 30).toFixed(1)} GiB`,
  );
} else verdict("124M, batch 16 x 1024, bf16", false, "no metrics");

// The model larger than its device budget, and the same model uncapped.
const capped = metrics("big_capped"),
  uncapped = metrics("big_uncapped");
const big = planOf("big_capped");
const modelData = 16 * big.param_count;
const budget = 8 * 2 ** 30;
const cappedOk = capped.length === 3 && capped.every((m) => Number.isFinite(m.loss) && m.device_peak_bytes <= budget);
verdict(
  `${(big.param_count / 1e9).toFixed(2)}B params in 8 GiB`,
  cappedOk && modelData >= 4 * budget,
  `model data ${(modelData / 2 ** 30).toFixed(1)} GiB = ${(modelData / budget).toFixed(1)}x the budget; ` +
    `${throughput(capped).toFixed(0)} tokens/s, ${((capped.at(-1)?.h2d_bytes ?? 0) / 2 ** 30).toFixed(1)} GiB in per step, ` +
    `device peak ${((capped.at(-1)?.device_peak_bytes ?? 0) / 2 ** 30).toFixed(2)} GiB`,
);
// What nvidia-smi saw in use on the GPU during the capped run (MiB samples): the arena plus the CUDA
// context, cuBLAS's workspace and the runtime's scratch, which the plan does not count; 1 GiB allowed.
const sampled = existsSync(join(out, "big_capped_gpu_mib.txt"))
  ? readFileSync(join(out, "big_capped_gpu_mib.txt"), "utf8").trim().split("\n").map(Number).filter(Number.isFinite)
  : [];
const usedGiB = Math.max(0, ...sampled) / 1024;
verdict(
  "  GPU memory in use (nvidia-smi)",
  sampled.length > 0 && usedGiB <= 9,
  sampled.length > 0
    ? `at most ${usedGiB.toFixed(2)} GiB over ${sampled.length} samples (limit 8 GiB + 1 GiB outside the arena)`
    : "no samples",
);
if (uncapped.length === 3) {
  rows.push([
    "  same model, no cap",
    "info",
    `${throughput(uncapped).toFixed(0)} tokens/s: the capped run reaches ` +
      `${((100 * throughput(capped)) / throughput(uncapped)).toFixed(0)}% of it`,
  ]);
} else rows.push(["  same model, no cap", "info", "did not run (does it fit this GPU?)"]);

// The LM-head tile a budget chose against the default tile: the kernels sum in fixed units, so bitwise.
const tilesDefault = metrics("tiles_default"),
  tilesSmall = metrics("tiles_small");
const differing = tilesDefault.filter((m, i) => tilesSmall[i]?.loss !== m.loss).length;
const tilePlan = existsSync(join(out, "tiles_small", "plan.json"))
  ? JSON.parse(readFileSync(join(out, "tiles_small", "plan.json"), "utf8")).kernel_tiles?.lm_head
  : undefined;
verdict(
  "LM-head tile under a budget vs default, fp32",
  tilesDefault.length === 20 && tilesSmall.length === 20 && differing === 0,
  `${differing} of ${tilesDefault.length} losses differ bitwise; tile ${tilePlan ? `${tilePlan.rows}x${tilePlan.cols}` : "?"} ` +
    `against ${tilePlan ? `${tilePlan.default_rows}x${tilePlan.default_cols}` : "?"}`,
);

// --tp 2 (two GPUs, NCCL) against the one-GPU run, both fp32: the same model and data, summed in other orders.
const tp2 = metrics("mini_tp2"),
  single = metrics("mini_fp32");
if (existsSync(join(out, "mini_tp2.skipped"))) {
  rows.push([
    "mini --tp 2 vs --tp 1, GPU fp32",
    "skip",
    readFileSync(join(out, "mini_tp2.skipped"), "utf8")
      .trim()
      .replace(/^gpu-check: /, ""),
  ]);
} else {
  const worst = Math.max(...single.map((s, i) => (tp2[i] ? Math.abs(tp2[i].loss - s.loss) / Math.abs(s.loss) : Infinity)));
  verdict(
    "mini --tp 2 vs --tp 1, GPU fp32",
    single.length === 10 && tp2.length === 10 && worst <= 1e-4,
    `worst relative difference ${worst.toExponential(2)} (limit 1e-4); final loss TP 1 ${single.at(-1)?.loss.toFixed(5)}, TP 2 ${tp2.at(-1)?.loss.toFixed(5)}`,
  );
}

// Generated (fused) kernels against one kernel per op: the same formulas in the same order, so the same bits.
const fused = metrics("llama_fused"),
  unfused = metrics("llama_unfused");
const firstFusedDifference = unfused.findIndex((u, i) => !Object.is(u.loss, fused[i]?.loss));
verdict(
  "llama, 10 losses, GPU fused vs --fusion off",
  fused.length === 10 && unfused.length === 10 && firstFusedDifference < 0,
  firstFusedDifference < 0
    ? `bitwise equal; final loss ${fused.at(-1)?.loss}`
    : `step ${firstFusedDifference + 1}: ${fused[firstFusedDifference]?.loss} vs ${unfused[firstFusedDifference].loss}`,
);

const width = [0, 1].map((k) => Math.max(...rows.map((r) => r[k].length)));
console.log(`GPU: ${gpu}\n`);
for (const [check, result, detail] of rows) console.log(`${check.padEnd(width[0])}  ${result.padEnd(width[1])}  ${detail}`);
console.log(failed ? "\ngpu-check: FAILED" : "\ngpu-check: all checks passed");
process.exit(failed ? 1 : 0);
