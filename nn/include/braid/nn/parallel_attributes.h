// How a parameter is split across ranks (Megatron's tensor_model_parallel / partition_dim / partition_stride):
// the attributes ride on the tensor itself (a slot in TensorImpl), so whatever receives the bare tensors (gradient
// clipping, DistributedDataParallel, a checkpoint writer gathering shards) can tell a shard from a replicated
// parameter. They survive Module::to (which replaces the storage, not the tensor) and state_dict().
// nn/ never talks to the group: it only carries the pointer, so nn/ needs no MPI (dist::ProcessGroup stays an
// incomplete type here).
#pragma once

#include <cstdint>
#include <memory>

#include "braid/core/tensor.h"

namespace braid::dist {
class ProcessGroup;
}

namespace braid::nn {

struct ParallelAttributes {
  // The dimension the full parameter was split along; -1 for a parameter every rank holds whole (replicated).
  int64_t shard_dim = -1;
  // How many shards the full parameter was split into, and which of them this tensor is (shard_rank is the
  // rank within `group`).
  int64_t num_shards = 1;
  int64_t shard_rank = 0;
  // The ranks that hold the other shards (the tensor-parallel group).
  std::shared_ptr<dist::ProcessGroup> group = nullptr;
  // Megatron's partition_stride: the full parameter is `partition_stride` equal blocks along shard_dim, each split
  // into num_shards parts, and a shard holds its part of every block (3 for a fused QKV weight: q, k and v parts).
  int64_t partition_stride = 1;
  // A replicated parameter whose gradient is partial under sequence parallelism (each rank saw only its slice of
  // the sequence): dist::all_reduce_sequence_parallel_grads sums its gradient over `group`.
  bool sequence_parallel = false;

  bool is_sharded() const { return shard_dim >= 0 && num_shards > 1; }
};

// Attaches `attributes` to the tensor (every handle sharing it sees them). Checks that shard_dim is -1 or one of
// the tensor's dims, that 0 <= shard_rank < num_shards, and that a sharded tensor names its group.
void set_parallel_attributes(const Tensor& t, const ParallelAttributes& attributes);
// The tensor's attributes; a default (replicated) value when none were set.
ParallelAttributes parallel_attributes(const Tensor& t);
bool is_sharded(const Tensor& t);
// Copies src's attributes (or their absence) onto dst, for a tensor that stands for the same parameter.
void copy_parallel_attributes(const Tensor& dst, const Tensor& src);

}  // namespace braid::nn
