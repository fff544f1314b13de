#include "braid/nn/parallel_attributes.h"

namespace braid::nn {

void set_parallel_attributes(const Tensor& t, const ParallelAttributes& a) {
  BRAID_CHECK(t.defined(), "set_parallel_attributes: the tensor is undefined");
  BRAID_CHECK(a.shard_dim >= -1 && a.shard_dim < t.dim(), "set_parallel_attributes: shard_dim ", a.shard_dim,
              " is not -1 (replicated) or a dim of a tensor of shape ", shape_str(t.shape()));
  BRAID_CHECK(a.num_shards >= 1, "set_parallel_attributes: num_shards must be >= 1, got ", a.num_shards);
  BRAID_CHECK(a.shard_rank >= 0 && a.shard_rank < a.num_shards, "set_parallel_attributes: shard_rank ",
              a.shard_rank, " is outside [0, ", a.num_shards, ")");
  BRAID_CHECK(!a.is_sharded() || a.group, "set_parallel_attributes: a tensor split into ", a.num_shards,
              " shards along dim ", a.shard_dim, " needs the group that holds the shards");
  BRAID_CHECK(a.partition_stride >= 1, "set_parallel_attributes: partition_stride must be >= 1, got ",
              a.partition_stride);
  BRAID_CHECK(!a.is_sharded() || t.shape()[size_t(a.shard_dim)] % a.partition_stride == 0,
              "set_parallel_attributes: a shard of shape ", shape_str(t.shape()), " does not split into ",
              a.partition_stride, " blocks (partition_stride) along dim ", a.shard_dim);
  BRAID_CHECK(!a.sequence_parallel || a.group, "set_parallel_attributes: a sequence-parallel parameter needs the "
              "group its gradient is summed over");
  t.impl()->parallel = std::make_shared<const ParallelAttributes>(a);
}

ParallelAttributes parallel_attributes(const Tensor& t) {
  BRAID_CHECK(t.defined(), "parallel_attributes: the tensor is undefined");
  const auto& p = t.impl()->parallel;
  return p ? *p : ParallelAttributes{};
}

bool is_sharded(const Tensor& t) { return parallel_attributes(t).is_sharded(); }

void copy_parallel_attributes(const Tensor& dst, const Tensor& src) {
  BRAID_CHECK(dst.defined() && src.defined(), "copy_parallel_attributes: undefined tensor");
  dst.impl()->parallel = src.impl()->parallel;
}

}  // namespace braid::nn
