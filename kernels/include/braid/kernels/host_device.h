// BRAID_HOST_DEVICE marks the element-wise math that both the CPU loops and the CUDA kernels run, so the math the
// CPU tests prove is the math the GPU executes. Without CUDA it expands to nothing.
#pragma once

#if defined(__CUDACC__)
#define BRAID_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define BRAID_HOST_DEVICE inline
#endif
