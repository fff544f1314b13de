#include "braid/dist/row_parallel_linear.h"

#include <cmath>

#include "braid/dist/sequence_parallel.h"
#include "braid/dist/shard_init.h"
#include "tensor_parallel_layer.h"

namespace braid::dist {

RowParallelLinearImpl::RowParallelLinearImpl(int64_t in, int64_t out, ProcessGroupPtr g,
                                             const RowParallelLinearOptions& o)
    : nn::Module("RowParallelLinear"), in_features(in), out_features(out), group(std::move(g)), options(o) {
  const char* name = "RowParallelLinear";
  detail::check_layer_sizes(name, group, {{"in_features", in, true}, {"out_features", out, false}});
  BRAID_CHECK(o.init_std >= 0, name, ": init_std must be >= 0, got ", o.init_std);
  BRAID_CHECK(!(o.sequence_parallel && !o.input_is_parallel), name,
              ": sequence_parallel needs input_is_parallel (the input is a ColumnParallelLinear's output)");
  TensorOptions opts(o.dtype, o.device);
  ShardSpec spec = detail::shard_spec(group, 1);
  Tensor w = o.init_std > 0 ? normal_shard({out, in}, spec, 0, o.init_std, opts)
                            : kaiming_uniform_shard({out, in}, spec, std::sqrt(5.0), opts);
  weight = register_parameter("weight", w);
  detail::mark_shard(weight, group, 1);
  if (o.bias) {
    double bound = 1.0 / std::sqrt(double(in));
    Tensor b = o.init_std > 0 ? zeros({out}, opts) : uniform_shard({out}, ShardSpec{}, -bound, bound, opts);
    bias = register_parameter("bias", b);
    if (o.sequence_parallel) mark_sequence_parallel(bias, group);
  }
}

Tensor RowParallelLinearImpl::forward(const Tensor& x) {
  BRAID_CHECK(x.defined(), "RowParallelLinear: the input is undefined");
  BRAID_CHECK(!options.sequence_parallel || x.dim() >= 2, "RowParallelLinear: with sequence_parallel the input ",
              "must be [.., sequence, features], got ", shape_str(x.shape()));
  Tensor in = options.input_is_parallel ? x : scatter_to_tensor_parallel_region(x, group);
  Tensor partial = linear(in, weight);
  Tensor y = options.sequence_parallel ? reduce_scatter_to_sequence_parallel_region(partial, group, x.dim() - 2)
                                       : reduce_from_tensor_parallel_region(partial, group);
  return bias.defined() ? y + bias : y;
}

}  // namespace braid::dist
