// The blocking collectives tensor parallelism needs, on tensors of any layout, along any dim: each returns a new
// contiguous tensor and leaves its input alone, so an autograd function can apply them to a saved or incoming
// tensor.
#pragma once

#include <cstdint>
#include <memory>

#include "braid/core/tensor.h"
#include "braid/dist/process_group.h"

namespace braid::dist::detail {

// Throws naming `op` when the group is null or this rank is not one of its members.
void check_tensor_parallel_group(const char* op, const std::shared_ptr<ProcessGroup>& group);
// Sum (or `op`) over the group.
Tensor all_reduce_copy(const Tensor& x, ProcessGroup& group, ReduceOp op = ReduceOp::Sum);
// The group's tensors concatenated along dim, in rank order.
Tensor all_gather_along(const Tensor& x, ProcessGroup& group, int64_t dim);
// The group's sum of x, of which this rank keeps its part along dim.
Tensor reduce_scatter_along(const Tensor& x, ProcessGroup& group, int64_t dim, const char* op);
// This rank's part of x along dim (dim's size must divide by the group's size).
Tensor split_along(const Tensor& x, const ProcessGroup& group, int64_t dim, const char* op);
// dim counted from the end when negative; throws naming `op` when out of range.
int64_t wrap_dim(int64_t dim, const Tensor& x, const char* op);

}  // namespace braid::dist::detail
