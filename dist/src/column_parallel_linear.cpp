#include "braid/dist/column_parallel_linear.h"

#include <cmath>

#include "braid/dist/shard_init.h"
#include "tensor_parallel_layer.h"

namespace braid::dist {

ColumnParallelLinearImpl::ColumnParallelLinearImpl(int64_t in, int64_t out, ProcessGroupPtr g,
                                                   const ColumnParallelLinearOptions& o)
    : nn::Module("ColumnParallelLinear"), in_features(in), out_features(out), group(std::move(g)), options(o) {
  const char* name = "ColumnParallelLinear";
  detail::check_layer_sizes(
      name, group,
      {{"in_features", in, false}, {"out_features", out, true}, {"partition_stride", o.partition_stride, false}});
  int64_t t = group->size(), stride = o.partition_stride;
  BRAID_CHECK(out % (t * stride) == 0, name, ": out_features ", out, " does not split into ", stride,
              " blocks (partition_stride) of ", t, " shards (the tensor-parallel size)");
  BRAID_CHECK(o.init_std >= 0, name, ": init_std must be >= 0, got ", o.init_std);
  BRAID_CHECK(!(o.gather_output && stride > 1 && t > 1), name, ": gather_output would interleave the ", stride,
              " blocks of a weight with partition_stride ", stride, "; gather the output per block instead");
  ShardSpec spec = detail::shard_spec(group, 0, stride);
  TensorOptions opts(o.dtype, o.device);
  Tensor w = o.init_std > 0 ? normal_shard({out, in}, spec, 0, o.init_std, opts)
                            : kaiming_uniform_shard({out, in}, spec, std::sqrt(5.0), opts);
  weight = register_parameter("weight", w);
  detail::mark_shard(weight, group, 0, stride);
  if (o.bias) {
    double bound = 1.0 / std::sqrt(double(in));
    Tensor b = o.init_std > 0 ? zeros(shard_shape({out}, spec), opts) : uniform_shard({out}, spec, -bound, bound, opts);
    bias = register_parameter("bias", b);
    detail::mark_shard(bias, group, 0, stride);
  }
}

Tensor ColumnParallelLinearImpl::forward(const Tensor& x) {
  BRAID_CHECK(x.defined(), "ColumnParallelLinear: the input is undefined");
  BRAID_CHECK(!options.sequence_parallel || x.dim() >= 2, "ColumnParallelLinear: with sequence_parallel the input ",
              "must be [.., sequence, features], got ", shape_str(x.shape()));
  Tensor in = options.sequence_parallel ? gather_from_sequence_parallel_region(x, group, x.dim() - 2)
                                        : copy_to_tensor_parallel_region(x, group);
  Tensor y = linear(in, weight, bias);
  return options.gather_output ? gather_from_tensor_parallel_region(y, group) : y;
}

}  // namespace braid::dist
