// The autograd functions tensor parallelism is built from (Megatron-LM's mappings, arXiv 1909.08053 and
// 2205.05198). Each is the conjugate of another: what one does forward, its partner does backward, so a column-
// parallel layer followed by a row-parallel one costs one all-reduce forward (the row layer's) and one backward (the
// column layer's input). On a group of size 1 every function returns its input unchanged and communicates nothing.
// Every rank of the group must call them in the same order; tensors may live on any device the group serves (CPU
// over MPI, CUDA over NCCL).
#pragma once

#include <cstdint>
#include <memory>

#include "braid/core/tensor.h"
#include "braid/dist/process_group.h"

namespace braid::dist {

using ProcessGroupPtr = std::shared_ptr<ProcessGroup>;

// Identity forward, all-reduce (sum) of the gradient backward: where a replicated input enters a split region.
Tensor copy_to_tensor_parallel_region(const Tensor& x, const ProcessGroupPtr& group);
// All-reduce (sum) forward, identity backward: where partial results leave a split region.
Tensor reduce_from_tensor_parallel_region(const Tensor& x, const ProcessGroupPtr& group);
// Keeps this rank's part of the last dim forward; all-gathers the gradient along it backward.
Tensor scatter_to_tensor_parallel_region(const Tensor& x, const ProcessGroupPtr& group);
// All-gathers the last dim forward (rank order); keeps this rank's part of the gradient backward.
Tensor gather_from_tensor_parallel_region(const Tensor& x, const ProcessGroupPtr& group);

// Sequence parallelism: `dim` is the sequence dim of the activations ([B, T, C] split along T is dim 1).
// Keeps this rank's part of `dim` forward; all-gathers the gradient backward.
Tensor scatter_to_sequence_parallel_region(const Tensor& x, const ProcessGroupPtr& group, int64_t dim);
// All-gathers along `dim` forward; reduce-scatters (sums) the gradient backward, as each rank's gradient of the
// gathered tensor is partial.
Tensor gather_from_sequence_parallel_region(const Tensor& x, const ProcessGroupPtr& group, int64_t dim);
// Reduce-scatters (sums) along `dim` forward; all-gathers the gradient backward.
Tensor reduce_scatter_to_sequence_parallel_region(const Tensor& x, const ProcessGroupPtr& group, int64_t dim);

}  // namespace braid::dist
