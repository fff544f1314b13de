// Per-device CUDA state of core/ (not installed): the stream every op of a device runs on, its cuBLAS handle,
// the caching allocator and copies. Built only with the CUDA backend.
#pragma once

#if BRAID_WITH_CUDA

#include <cstddef>

#include "braid/core/tensor.h"
#include "braid/kernels/cuda/kernels.h"

namespace braid::cuda::detail {

// Makes `device` current on this thread and returns its stream.
kernels::cuda::Stream stream(Device device);
kernels::cuda::BlasHandle blas(Device device);
Storage allocate(size_t nbytes, Device device);
// Copies nbytes between any two devices (CPU included); returns once the destination holds the data.
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes);

}  // namespace braid::cuda::detail

#endif
