#include "braid/dist/parallel_regions.h"

#include <utility>

#include "braid/core/ops.h"
#include "braid/nn/autograd.h"
#include "collectives_along_dim.h"

namespace braid::dist {

namespace {

// One region: `forward` computes the output (with no graph), `backward` maps the output's gradient to the input's;
// both are collectives (or local splits) along `dim` over the group.
template <class Forward, class Backward>
Tensor region(const char* op, const char* node, const Tensor& x, const ProcessGroupPtr& group, Forward forward,
              Backward backward) {
  detail::check_tensor_parallel_group(op, group);
  BRAID_CHECK(x.defined(), op, ": the input is undefined");
  if (group->size() == 1) return x;
  Tensor out;
  {
    NoGradGuard no_grad;
    out = forward(x.detach(), *group);
  }
  if (!autograd::any_requires_grad({x})) return out;
  return autograd::record(node, out, {x},
                          [group, backward](const Tensor& g) { return std::vector<Tensor>{backward(g, *group)}; });
}

// The identity's output: a new tensor over x's memory, so the node attaches to it and not to x.
Tensor alias(const Tensor& x, ProcessGroup&) { return ops::view(x, x.shape()); }

}  // namespace

Tensor copy_to_tensor_parallel_region(const Tensor& x, const ProcessGroupPtr& group) {
  return region("copy_to_tensor_parallel_region", "CopyToTensorParallelRegionBackward", x, group, alias,
                [](const Tensor& g, ProcessGroup& pg) { return detail::all_reduce_copy(g, pg); });
}

Tensor reduce_from_tensor_parallel_region(const Tensor& x, const ProcessGroupPtr& group) {
  return region(
      "reduce_from_tensor_parallel_region", "ReduceFromTensorParallelRegionBackward", x, group,
      [](const Tensor& v, ProcessGroup& pg) { return detail::all_reduce_copy(v, pg); },
      [](const Tensor& g, ProcessGroup&) { return g; });
}

Tensor scatter_to_tensor_parallel_region(const Tensor& x, const ProcessGroupPtr& group) {
  const char* op = "scatter_to_tensor_parallel_region";
  int64_t d = x.defined() ? x.dim() - 1 : 0;
  BRAID_CHECK(!x.defined() || x.dim() >= 1, op, ": the input must have at least one dim");
  return region(
      op, "ScatterToTensorParallelRegionBackward", x, group,
      [d, op](const Tensor& v, ProcessGroup& pg) { return detail::split_along(v, pg, d, op); },
      [d](const Tensor& g, ProcessGroup& pg) { return detail::all_gather_along(g, pg, d); });
}

Tensor gather_from_tensor_parallel_region(const Tensor& x, const ProcessGroupPtr& group) {
  const char* op = "gather_from_tensor_parallel_region";
  int64_t d = x.defined() ? x.dim() - 1 : 0;
  BRAID_CHECK(!x.defined() || x.dim() >= 1, op, ": the input must have at least one dim");
  return region(
      op, "GatherFromTensorParallelRegionBackward", x, group,
      [d](const Tensor& v, ProcessGroup& pg) { return detail::all_gather_along(v, pg, d); },
      [d, op](const Tensor& g, ProcessGroup& pg) { return detail::split_along(g, pg, d, op); });
}

Tensor scatter_to_sequence_parallel_region(const Tensor& x, const ProcessGroupPtr& group, int64_t dim) {
  const char* op = "scatter_to_sequence_parallel_region";
  int64_t d = x.defined() ? detail::wrap_dim(dim, x, op) : 0;
  return region(
      op, "ScatterToSequenceParallelRegionBackward", x, group,
      [d, op](const Tensor& v, ProcessGroup& pg) { return detail::split_along(v, pg, d, op); },
      [d](const Tensor& g, ProcessGroup& pg) { return detail::all_gather_along(g, pg, d); });
}

Tensor gather_from_sequence_parallel_region(const Tensor& x, const ProcessGroupPtr& group, int64_t dim) {
  const char* op = "gather_from_sequence_parallel_region";
  int64_t d = x.defined() ? detail::wrap_dim(dim, x, op) : 0;
  return region(
      op, "GatherFromSequenceParallelRegionBackward", x, group,
      [d](const Tensor& v, ProcessGroup& pg) { return detail::all_gather_along(v, pg, d); },
      [d, op](const Tensor& g, ProcessGroup& pg) { return detail::reduce_scatter_along(g, pg, d, op); });
}

Tensor reduce_scatter_to_sequence_parallel_region(const Tensor& x, const ProcessGroupPtr& group, int64_t dim) {
  const char* op = "reduce_scatter_to_sequence_parallel_region";
  int64_t d = x.defined() ? detail::wrap_dim(dim, x, op) : 0;
  return region(
      op, "ReduceScatterToSequenceParallelRegionBackward", x, group,
      [d, op](const Tensor& v, ProcessGroup& pg) { return detail::reduce_scatter_along(v, pg, d, op); },
      [d](const Tensor& g, ProcessGroup& pg) { return detail::all_gather_along(g, pg, d); });
}

}  // namespace braid::dist
