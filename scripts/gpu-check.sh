#!/usr/bin/env bash
# The CUDA backend on a real GPU, in under 8 minutes on one H100 (each stage has its own time limit):
#   0. first runs the emulated CUDA tests (the same CUDA sources on the CPU, test/system/cuda_emulate.test.ts,
#      test/system/cuda_kernels.test.ts, test/system/emulation.test.ts), so that a failure below reads as "emulation
#      agrees, the hardware disagrees" rather than as an ordinary bug (GPU_CHECK_SKIP_EMULATED=1 skips it);
#   1. builds every plan below with nvcc (the runtime once, then the plans in parallel);
#   2. trains GPT-2 `mini` for 10 steps on the CPU and on the GPU from the same seeded init and data:
#      matmuls in fp32, losses within 1e-4 relative of the CPU's; in bf16, within 2e-2; in fp32 with two
#      blocks' saved activations moved to host memory and back, within 1e-4;
#   3. times GPT-2 124M at batch 16 x seq 1024: tokens/s and MFU against the card's dense bf16 peak;
#   4. trains a GPT whose model data (parameters, gradients, AdamW moments: 16 bytes a parameter) is over
#      4x a --device-memory of 8 GiB for 3 steps, and the same model without a cap, and compares them;
#   5. trains a tiny GPT with GPT-2's vocabulary for 20 steps in fp32, unlimited and under a device budget
#      that makes the planner choose a smaller LM-head tile: the losses must be bitwise equal, as they
#      are on the CPU (test/system/kernel_tiles.test.ts), whatever tile cuBLAS is given;
#   6. trains Llama `tiny` for 10 steps in fp32 fused (the default) and with --fusion off: the generated
#      kernels must give the unfused kernels' losses bit for bit (no FMA may span two fused steps);
#   7. with two GPUs or more: trains GPT-2 `mini` at --tp 2 (two ranks, one GPU each, NCCL) for 10 steps
#      in fp32, losses within 1e-4 relative of the one-GPU fp32 run's; with one GPU it says why it skips;
#   8. prints a summary table (scripts/gpu_check_summary.ts) and exits 1 if any check failed.
# Needs: an NVIDIA GPU with its driver, nvcc, cuBLAS (the toolkit's or NVIDIA's Python wheel), Node 20
# and the repository set up (npm run setup); for step 5 also NCCL (libnccl.so.2, e.g. the nvidia-nccl
# wheel) and mpirun. Outputs go to $GPU_CHECK_OUT (default out/gpu-check).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${GPU_CHECK_OUT:-out/gpu-check}
rm -rf "$OUT"
mkdir -p "$OUT"
STOW=(node bin/stow.js)
MODEL=samples/gpt2.ts
STARTED=$SECONDS

fail() {
  echo "gpu-check: FAILED: $*" >&2
  exit 1
}
stage() { echo; echo "=== [$((SECONDS - STARTED)) s] $*"; }

# The configurations, by name: stow flags shared by compile and train (so train finds the build).
declare -A FLAGS=(
  [mini_cpu]="--preset mini"
  [mini_fp32]="--preset mini --backend cuda --precision fp32"
  [mini_bf16]="--preset mini --backend cuda"
  # Two blocks' saved activations in pinned host memory over the copy streams, the next one recomputed.
  [mini_moved]="--preset mini --backend cuda --precision fp32 --move-activations 2 --checkpoint blocks:1"
  [gpt124m]="--preset 124M --batch 16 --seq 1024 --backend cuda"
  # 72 layers of GPT-2 1.5B's width: 2.29e9 parameters, 34 GiB of model data; blocks recomputed.
  [big_capped]="--preset 1.5B --set layers=72 --batch 1 --checkpoint blocks --backend cuda --device-memory 8GiB"
  [big_uncapped]="--preset 1.5B --set layers=72 --batch 1 --checkpoint blocks --backend cuda"
  # A tiny GPT with GPT-2's vocabulary: 17 MB is below the default LM-head tile's 16 MiB workspace plus
  # the rest, so the planner picks a smaller tile (the CPU's test/system/kernel_tiles.test.ts).
  [tiles_default]="--set vocab=50257 --set seq=32 --set layers=2 --set dim=64 --set heads=4 --batch 4 --backend cuda --precision fp32"
  [tiles_small]="--set vocab=50257 --set seq=32 --set layers=2 --set dim=64 --set heads=4 --batch 4 --backend cuda --precision fp32 --device-memory 17000000"
  [mini_tp2]="--preset mini --backend cuda --precision fp32 --tp 2"
  # samples/llama.ts: RMSNorm and SwiGLU are what elementwise fusion groups (GPT-2's chains are cut by reshapes).
  [llama_fused]="--preset tiny --backend cuda --precision fp32"
  [llama_unfused]="--preset tiny --backend cuda --precision fp32 --fusion off"
)
GPU_PLANS=(mini_fp32 mini_bf16 mini_moved gpt124m big_capped big_uncapped tiles_default tiles_small)

stage "preflight"
command -v nvidia-smi >/dev/null || fail "nvidia-smi not found: no NVIDIA driver on this machine"
command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ] || fail "nvcc not found (CUDA toolkit)"
[ -x node_modules/.bin/tsx ] || fail "the repository is not set up: run npm run setup"
GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
echo "GPU: $GPU_NAME"
echo "$GPU_NAME" > "$OUT/gpu_name"
GPU_COUNT=$(nvidia-smi --query-gpu=name --format=csv,noheader | wc -l)
echo "GPUs: $GPU_COUNT"
# --tp 2 takes one GPU per rank.
if ((GPU_COUNT > 1)); then GPU_PLANS+=(mini_tp2); fi

# run NAME LIMIT_SECONDS ARGS...: one stow command with a time limit, its output kept in $OUT/NAME.log.
run() {
  local name=$1 limit=$2
  shift 2
  echo "+ stow $*" | tee "$OUT/$name.log"
  if ! timeout "$limit" "${STOW[@]}" "$@" >>"$OUT/$name.log" 2>&1; then
    tail -20 "$OUT/$name.log" >&2
    [ "$name" = big_uncapped ] && return 1
    fail "$name (see $OUT/$name.log)"
  fi
}

if [ "${GPU_CHECK_SKIP_EMULATED:-0}" != 1 ]; then
  stage "the emulated CUDA tests: the same CUDA sources, run on the CPU"
  if ! timeout 1200 node_modules/.bin/vitest run test/system/emulation.test.ts test/system/cuda_kernels.test.ts test/system/cuda_emulate.test.ts \
    >"$OUT/emulated.log" 2>&1; then
    tail -30 "$OUT/emulated.log" >&2
    fail "the emulated CUDA tests fail on this machine: fix those first (see $OUT/emulated.log)"
  fi
  echo "emulated CUDA tests pass: what fails below is the hardware's (or nvcc's) difference from the emulation"
fi

stage "build: the CUDA runtime with the first plan, then the other plans in parallel"
run build_mini_fp32 240 compile "$MODEL" ${FLAGS[mini_fp32]} -o "$OUT/mini_fp32"
pids=()
for name in mini_cpu "${GPU_PLANS[@]:1}"; do
  run "build_$name" 240 compile "$MODEL" ${FLAGS[$name]} -o "$OUT/$name" &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || fail "a build failed (see $OUT/build_*.log)"; done

TRAIN=(--no-sample --seed 1337)
stage "GPT-2 mini, 10 steps: CPU, GPU fp32, GPU bf16, GPU fp32 with activations moved"
run mini_cpu 120 train "$MODEL" ${FLAGS[mini_cpu]} --steps 10 "${TRAIN[@]}" --metrics "$OUT/mini_cpu.jsonl"
run mini_fp32 90 train "$MODEL" ${FLAGS[mini_fp32]} --steps 10 "${TRAIN[@]}" --metrics "$OUT/mini_fp32.jsonl"
run mini_bf16 90 train "$MODEL" ${FLAGS[mini_bf16]} --steps 10 "${TRAIN[@]}" --metrics "$OUT/mini_bf16.jsonl"
run mini_moved 90 train "$MODEL" ${FLAGS[mini_moved]} --steps 10 "${TRAIN[@]}" --metrics "$OUT/mini_moved.jsonl"

stage "GPT-2 124M, batch 16 x seq 1024, 10 steps"
run gpt124m 150 train "$MODEL" ${FLAGS[gpt124m]} --steps 10 "${TRAIN[@]}" --metrics "$OUT/gpt124m.jsonl"

stage "2.3B-parameter GPT, 3 steps: in 8 GiB of device memory, then uncapped"
# nvidia-smi's view of the GPU's memory in use, sampled through the capped run: the arena is capped by
# the plan, this also sees the CUDA context, cuBLAS's workspace and the runtime's scratch.
( while true; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1; sleep 0.5; done ) \
  >"$OUT/big_capped_gpu_mib.txt" 2>/dev/null &
WATCH=$!
trap 'kill "$WATCH" 2>/dev/null || true' EXIT
run big_capped 200 train "$MODEL" ${FLAGS[big_capped]} --steps 3 "${TRAIN[@]}" --metrics "$OUT/big_capped.jsonl"
kill "$WATCH" 2>/dev/null || true
# Only where it fits: a GPU with less memory than the model data reports "no cap: did not run".
run big_uncapped 150 train "$MODEL" ${FLAGS[big_uncapped]} --steps 3 "${TRAIN[@]}" --metrics "$OUT/big_uncapped.jsonl" ||
  echo "gpu-check: the uncapped run did not complete (see $OUT/big_uncapped.log)"

stage "LM-head tiles: a tiny GPT-2-vocabulary GPT, 20 steps, unlimited and under a budget"
run tiles_default 90 train "$MODEL" ${FLAGS[tiles_default]} --steps 20 "${TRAIN[@]}" --metrics "$OUT/tiles_default.jsonl"
run tiles_small 90 train "$MODEL" ${FLAGS[tiles_small]} --steps 20 "${TRAIN[@]}" --metrics "$OUT/tiles_small.jsonl"

stage "Llama tiny, 10 steps in fp32: fused and --fusion off"
run llama_fused 150 train samples/llama.ts ${FLAGS[llama_fused]} --steps 10 "${TRAIN[@]}" --metrics "$OUT/llama_fused.jsonl"
run llama_unfused 150 train samples/llama.ts ${FLAGS[llama_unfused]} --steps 10 "${TRAIN[@]}" --metrics "$OUT/llama_unfused.jsonl"

if ((GPU_COUNT > 1)); then
  stage "GPT-2 mini at --tp 2 on two GPUs (NCCL), fp32, 10 steps"
  run mini_tp2 150 train "$MODEL" ${FLAGS[mini_tp2]} --steps 10 "${TRAIN[@]}" --metrics "$OUT/mini_tp2.jsonl"
else
  echo "gpu-check: --tp 2 skipped: it takes one GPU per rank, and this machine has $GPU_COUNT" | tee "$OUT/mini_tp2.skipped"
fi

stage "summary (total $((SECONDS - STARTED)) s)"
node_modules/.bin/tsx scripts/gpu_check_summary.ts "$OUT"
