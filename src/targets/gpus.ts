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
// - network: the link between the GPUs of one machine (up to 8), as a ring collective's bus bandwidth:
//   75% of the NVLink bandwidth per direction where the GPUs sit on NVSwitch (data-centre cards); on
//   GeForce cards, which have no peer-to-peer over PCIe, NCCL stages through host memory, so about 40% of
//   the PCIe figure above. Latency: about 3 us a ring step over NVLink, 10 us through the host. Between
//   machines (InfiniBand) is not modelled.
// - diskReadBandwidth, diskWriteBandwidth: one NVMe drive of the host's generation, for the disk tier.
//   Reads at 80% of the datasheet's sequential rate. Writes: a data-centre drive holds its datasheet rate
//   (80% taken); a consumer TLC drive writes at its datasheet rate only until its SLC cache (tens to a
//   few hundred GB) is full, and a disk-tier step rewrites far more than that, so its rate once the cache
//   is full is taken, as TechPowerUp's sustained-write tests measured it. An array of drives multiplies
//   both: give such a host as a JSON profile.
//   - PCIe 3.0 (consumer): Samsung 970 EVO 500 GB: 3.4 GB/s read (datasheet); about 0.6 GB/s written
//     once its SLC cache is full (TechPowerUp's review).
//   - PCIe 4.0 (consumer): Samsung 980 PRO 1 TB: 7.0 GB/s read (datasheet); 1.5 GB/s written once its
//     SLC cache is full (TechPowerUp's review, 1.9 GB/s averaged over filling the drive).
//   - PCIe 4.0 (data centre): Intel D7-P5500 3.84 TB: 7.0 GB/s read, 4.3 GB/s written (datasheet).
import type { Target } from "./target.ts";

const GiB = 2 ** 30;

// The NVMe drives of the shared assumptions above.
const CONSUMER_GEN3_NVME = { diskReadBandwidth: 0.8 * 3.4e9, diskWriteBandwidth: 0.6e9 };
const CONSUMER_GEN4_NVME = { diskReadBandwidth: 0.8 * 7.0e9, diskWriteBandwidth: 1.5e9 };
const DATA_CENTRE_NVME = { diskReadBandwidth: 0.8 * 7.0e9, diskWriteBandwidth: 0.8 * 4.3e9 };

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
      network: { bandwidth: 0.4 * 12e9, latency: 10e-6 },
      ...CONSUMER_GEN3_NVME,
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
      network: { bandwidth: 0.4 * 24e9, latency: 10e-6 },
      ...CONSUMER_GEN4_NVME,
    },
  },
  // GeForce RTX 4090 (AD102): 24 GiB GDDR6X, 1008 GB/s; 82.6 TFLOP/s fp32 and 82.6 dense TF32 on GeForce
  // Ada (so TF32 gains nothing here); PCIe 4.0 x16, no peer-to-peer (as the 3090 above). Host: 256 GiB, as
  // in the LoHan/Fuyou single-4090 setup, needs a workstation board, taken as quad-channel DDR4-3200
  // (102 GB/s peak), as for the 3090.
  "rtx4090-24g": {
    description: "NVIDIA GeForce RTX 4090 24 GB (Ada, fp32/TF32 82.6 TFLOP/s peak, PCIe 4.0 x16, quad-channel DDR4 host, PCIe 4.0 NVMe)",
    deviceMemory: 23.5 * GiB,
    machine: {
      matmulFlops: 0.6 * 82.6e12,
      memoryBandwidth: 0.8 * 1008e9,
      linkBandwidth: 24e9,
      hostBandwidth: 50e9,
      network: { bandwidth: 0.4 * 24e9, latency: 10e-6 },
      ...CONSUMER_GEN4_NVME,
    },
  },
  // A100 80GB SXM4: 80 GiB HBM2e, 2039 GB/s; 156 TFLOP/s dense TF32 (19.5 fp32); PCIe 4.0 x16 to the
  // host; NVLink 3 to NVSwitch, 12 links of 25 GB/s a direction (HGX A100). Host: two-socket server,
  // 8-channel DDR4-3200 a socket (205 GB/s a socket).
  "a100-80g": {
    description: "NVIDIA A100 80 GB SXM4 (TF32 tensor cores, PCIe 4.0 x16, 8-channel DDR4 server host)",
    deviceMemory: 79 * GiB,
    machine: {
      matmulFlops: 0.6 * 156e12,
      memoryBandwidth: 0.8 * 2039e9,
      linkBandwidth: 24e9,
      hostBandwidth: 100e9,
      network: { bandwidth: 0.75 * 300e9, latency: 3e-6 },
      ...DATA_CENTRE_NVME,
    },
  },
  // H100 80GB SXM5: 80 GiB HBM3, 3.35 TB/s; 495 TFLOP/s dense TF32 (67 fp32); PCIe 5.0 x16 to the
  // host; NVLink 4 to NVSwitch, 18 links of 25 GB/s a direction (HGX H100). Host: two-socket server,
  // 8-channel DDR5-4800 a socket (307 GB/s a socket).
  "h100-80g": {
    description: "NVIDIA H100 80 GB SXM5 (TF32 tensor cores, PCIe 5.0 x16, 8-channel DDR5 server host)",
    deviceMemory: 79 * GiB,
    machine: {
      matmulFlops: 0.6 * 495e12,
      memoryBandwidth: 0.8 * 3350e9,
      linkBandwidth: 50e9,
      hostBandwidth: 150e9,
      network: { bandwidth: 0.75 * 450e9, latency: 3e-6 },
      ...DATA_CENTRE_NVME,
    },
  },
};
