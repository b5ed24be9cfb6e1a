// Named GPU profiles, as data. Each number is a sustained rate a training step sees, not a datasheet
// peak; the sources and the fractions taken are stated beside each. All are for fp32 training, the only
// precision this backend has: fp32 products on CUDA cores (Turing), or on TF32 tensor cores where the
// card has them and frameworks use them for fp32 matmuls (Ampere, Hopper; `allow_tf32`).
//
// Shared assumptions:
// - deviceMemory: the card's memory less 0.5 GiB (consumer cards) or 1 GiB (data-centre cards) for the
//   CUDA context, cuBLAS workspaces and allocator slack, which a plan's arena cannot use.
// - matmulFlops: 70% of the fp32 CUDA-core peak, or 60% of the dense TF32 tensor-core peak (cuBLAS
//   reaches more on large square products; a step's products are smaller and include attention).
// - memoryBandwidth: 80% of the datasheet DRAM bandwidth (what a streaming elementwise kernel reaches).
// - linkBandwidth: pinned host-to-device copies over PCIe x16, about 12 GB/s on gen3, 24 GB/s on
//   gen4 and 50 GB/s on gen5 (roughly 80% of 15.8, 31.5 and 63 GB/s per direction).
// - hostBandwidth: AdamW on the host for offloaded chunks (multi-threaded, vectorised, as DeepSpeed's
//   CPU Adam and Colossal-AI's HybridAdam are) at about half the peak of the host memory the card
//   typically sits next to.
// - networkBandwidth, networkLatency: between the GPUs of one server, for the collectives of --tp and --dp:
//   NVLink on the SXM parts (600 GB/s on A100, 900 GB/s on H100, both directions together), PCIe
//   peer-to-peer on the GeForce cards (as linkBandwidth; no NVLink bridge assumed), at 80% of the peak
//   per direction; about 10 us a call on NVLink and 20 us over PCIe (NCCL's small-message latency).
//   Servers linked by InfiniBand (typically 25 GB/s a GPU) are not modelled: a plan's ranks share one.
import type { Target } from "./target.ts";

const GiB = 2 ** 30;

export const GPU_TARGETS: Readonly<Record<string, Omit<Target, "name">>> = {
  // GeForce RTX 2060 (TU106, desktop): 6 GiB GDDR6, 336 GB/s; 6.45 TFLOP/s fp32 at 1.68 GHz boost (no
  // TF32 on Turing; its fp16 tensor cores are not used by fp32 training); PCIe 3.0 x16. The laptop part
  // has the same memory and link at lower clocks (about 4.6 TFLOP/s): read its times as optimistic.
  // Host: a desktop or laptop, dual-channel DDR4-2666 (42.7 GB/s peak).
  "rtx2060-6g": {
    description: "NVIDIA GeForce RTX 2060 6 GB (Turing, fp32 on CUDA cores, PCIe 3.0 x16, dual-channel DDR4 host)",
    deviceMemory: 5.5 * GiB,
    machine: {
      matmulFlops: 0.7 * 6.45e12,
      memoryBandwidth: 0.8 * 336e9,
      linkBandwidth: 12e9,
      hostBandwidth: 20e9,
      networkBandwidth: 12e9,
      networkLatency: 20e-6,
    },
  },
  // GeForce RTX 3090 (GA102): 24 GiB GDDR6X, 936 GB/s; 35.6 TFLOP/s fp32 and 35.6 dense TF32 on
  // GeForce Ampere (so TF32 gains nothing here); PCIe 4.0 x16. Host: 256 GiB needs a workstation
  // board, quad-channel DDR4-3200 (102 GB/s peak).
  "rtx3090-24g": {
    description: "NVIDIA GeForce RTX 3090 24 GB (Ampere, fp32/TF32 35.6 TFLOP/s peak, PCIe 4.0 x16, quad-channel DDR4 host)",
    deviceMemory: 23.5 * GiB,
    machine: {
      matmulFlops: 0.6 * 35.6e12,
      memoryBandwidth: 0.8 * 936e9,
      linkBandwidth: 24e9,
      hostBandwidth: 50e9,
      networkBandwidth: 24e9,
      networkLatency: 20e-6,
    },
  },
  // A100 80GB SXM4: 80 GiB HBM2e, 2039 GB/s; 156 TFLOP/s dense TF32 (19.5 fp32); PCIe 4.0 x16 to the
  // host. Host: two-socket server, 8-channel DDR4-3200 a socket (205 GB/s a socket).
  "a100-80g": {
    description: "NVIDIA A100 80 GB SXM4 (TF32 tensor cores, PCIe 4.0 x16, 8-channel DDR4 server host)",
    deviceMemory: 79 * GiB,
    machine: {
      matmulFlops: 0.6 * 156e12,
      memoryBandwidth: 0.8 * 2039e9,
      linkBandwidth: 24e9,
      hostBandwidth: 100e9,
      networkBandwidth: 0.8 * 300e9,
      networkLatency: 10e-6,
    },
  },
  // H100 80GB SXM5: 80 GiB HBM3, 3.35 TB/s; 495 TFLOP/s dense TF32 (67 fp32); PCIe 5.0 x16 to the
  // host. Host: two-socket server, 8-channel DDR5-4800 a socket (307 GB/s a socket).
  "h100-80g": {
    description: "NVIDIA H100 80 GB SXM5 (TF32 tensor cores, PCIe 5.0 x16, 8-channel DDR5 server host)",
    deviceMemory: 79 * GiB,
    machine: {
      matmulFlops: 0.6 * 495e12,
      memoryBandwidth: 0.8 * 3350e9,
      linkBandwidth: 50e9,
      hostBandwidth: 150e9,
      networkBandwidth: 0.8 * 450e9,
      networkLatency: 10e-6,
    },
  },
};
