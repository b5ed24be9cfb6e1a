// The emulated CUDA target's stand-in for <library_types.h>: the data type enumeration cuBLAS and its
// stand-in (cublas_standin.cpp) take, with the CUDA toolkit's values.
#pragma once

typedef enum cudaDataType_t {
  CUDA_R_32F = 0,
  CUDA_R_64F = 1,
  CUDA_R_16F = 2,
  CUDA_R_8I = 3,
  CUDA_R_32I = 10,
  CUDA_R_16BF = 14,
} cudaDataType;
