// Checked calls into the CUDA runtime and cuBLAS: a failure throws braid::Error naming the call, file:line and the
// library's own error string (as llm.c's cudaCheck does). Only for code compiled against the CUDA toolkit.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "braid/kernels/error.h"

#define BRAID_CUDA_CHECK(call)                                                                          \
  do {                                                                                                 \
    cudaError_t braid_cuda_err_ = (call);                                                              \
    if (braid_cuda_err_ != cudaSuccess)                                                                \
      BRAID_FAIL(#call, " failed at ", __FILE__, ":", __LINE__, ": ", cudaGetErrorName(braid_cuda_err_), \
                 " (", cudaGetErrorString(braid_cuda_err_), ")");                                     \
  } while (0)

#define BRAID_CUBLAS_CHECK(call)                                                                         \
  do {                                                                                                  \
    cublasStatus_t braid_cublas_st_ = (call);                                                           \
    if (braid_cublas_st_ != CUBLAS_STATUS_SUCCESS)                                                      \
      BRAID_FAIL(#call, " failed at ", __FILE__, ":", __LINE__, ": ", cublasGetStatusName(braid_cublas_st_), \
                 " (", cublasGetStatusString(braid_cublas_st_), ")");                                   \
  } while (0)

// After a kernel launch: reports a bad configuration or an earlier asynchronous fault.
#define BRAID_CUDA_CHECK_LAUNCH() BRAID_CUDA_CHECK(cudaGetLastError())
