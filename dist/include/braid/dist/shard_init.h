// Initialising a shard of a parameter from the generator as if the whole parameter were drawn: the generator is
// sequential, so this rank streams every draw of the full tensor in order and keeps only its shard's elements.
// Memory is the shard's, the generator ends where drawing the full tensor leaves it (the same state on every rank),
// and the shards of all ranks put together are bit for bit the tensor nn::init would have drawn. Values are drawn
// on the CPU and then moved to options.device, as nn's layers do.
#pragma once

#include <cstdint>

#include "braid/core/core.h"

namespace braid::dist {

// Which part of a full tensor a rank holds (Megatron's layout): along `dim`, the full tensor is `stride` equal
// blocks, each split into `num_shards` equal parts; the shard is part `shard_rank` of every block, in block order.
struct ShardSpec {
  int64_t dim = 0;
  int64_t num_shards = 1;
  int64_t shard_rank = 0;
  int64_t stride = 1;
};

// The shard's shape; throws naming `op` when the full shape does not split.
Shape shard_shape(const Shape& full_shape, const ShardSpec& spec, const char* op = "shard_shape");

// The shard of a full tensor drawn as braid::uniform / braid::normal would draw it.
Tensor uniform_shard(const Shape& full_shape, const ShardSpec& spec, double low, double high,
                     TensorOptions options = {}, Generator* gen = nullptr);
Tensor normal_shard(const Shape& full_shape, const ShardSpec& spec, double mean, double std, TensorOptions options = {},
                    Generator* gen = nullptr);
// nn::init::kaiming_uniform_'s bound, from the full tensor's fan-in.
Tensor kaiming_uniform_shard(const Shape& full_shape, const ShardSpec& spec, double a, TensorOptions options = {},
                             Generator* gen = nullptr);

// The shard of an existing full tensor (a copy, contiguous, on the full tensor's device).
Tensor shard_of(const Tensor& full, const ShardSpec& spec);

}  // namespace braid::dist
