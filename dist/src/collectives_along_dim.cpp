#include "collectives_along_dim.h"

#include "braid/core/creation.h"
#include "braid/core/ops.h"
#include "group_ranks.h"

namespace braid::dist::detail {

void check_tensor_parallel_group(const char* op, const std::shared_ptr<ProcessGroup>& group) {
  BRAID_CHECK(group, op, ": the tensor-parallel group is null");
  BRAID_CHECK(group->is_member(), op, ": this rank is not a member of the tensor-parallel group ",
              ranks_str(group->ranks()));
}

int64_t wrap_dim(int64_t dim, const Tensor& x, const char* op) {
  int64_t d = dim < 0 ? dim + x.dim() : dim;
  BRAID_CHECK(d >= 0 && d < x.dim(), op, ": dim ", dim, " is out of range for a tensor of shape ",
              shape_str(x.shape()));
  return d;
}

namespace {
void check_divisible(const Tensor& x, const ProcessGroup& group, int64_t dim, const char* op) {
  BRAID_CHECK(x.shape()[size_t(dim)] % group.size() == 0, op, ": dim ", dim, " of shape ", shape_str(x.shape()), " (",
              x.shape()[size_t(dim)], ") does not divide by the tensor-parallel size ", group.size());
}

// x with `dim` moved to the front, contiguous: the layout whose flat chunks the collectives exchange.
Tensor dim_first(const Tensor& x, int64_t dim) { return ops::contiguous(ops::transpose(x, 0, dim)); }
Tensor dim_back(const Tensor& x, int64_t dim) { return ops::contiguous(ops::transpose(x, 0, dim)); }
}  // namespace

Tensor all_reduce_copy(const Tensor& x, ProcessGroup& group, ReduceOp op) {
  Tensor out = ops::clone(x);
  group.all_reduce(out, op)->wait();
  return out;
}

Tensor all_gather_along(const Tensor& x, ProcessGroup& group, int64_t dim) {
  Tensor in = dim_first(x, dim);
  Shape shape = in.shape();
  shape[0] *= group.size();
  Tensor out = empty(shape, TensorOptions(x.dtype(), x.device()));
  group.all_gather(out, in)->wait();
  return dim_back(out, dim);
}

Tensor reduce_scatter_along(const Tensor& x, ProcessGroup& group, int64_t dim, const char* op) {
  check_divisible(x, group, dim, op);
  Tensor in = dim_first(x, dim);
  Shape shape = in.shape();
  shape[0] /= group.size();
  Tensor out = empty(shape, TensorOptions(x.dtype(), x.device()));
  group.reduce_scatter(out, in, ReduceOp::Sum)->wait();
  return dim_back(out, dim);
}

Tensor split_along(const Tensor& x, const ProcessGroup& group, int64_t dim, const char* op) {
  check_divisible(x, group, dim, op);
  int64_t n = x.shape()[size_t(dim)] / group.size();
  return ops::contiguous(ops::narrow(x, dim, group.rank() * n, n));
}

}  // namespace braid::dist::detail
