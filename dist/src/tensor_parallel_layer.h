// Private to dist/: what every tensor-parallel layer does at construction. The sizes are first compared across the
// group (one small all_gather), so ranks that disagree fail together with a message listing each rank's sizes
// instead of hanging or exchanging mismatched shards later; then each size that must split is checked.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "braid/core/tensor.h"
#include "braid/dist/process_group.h"
#include "braid/dist/shard_init.h"

namespace braid::dist::detail {

struct NamedSize {
  const char* name;
  int64_t value;
  bool must_divide;  // by the group's size
};

// Throws the same braid::Error on every rank of the group, naming `layer` and the sizes.
void check_layer_sizes(const char* layer, const std::shared_ptr<ProcessGroup>& group,
                       const std::vector<NamedSize>& sizes);
// This rank's part of a parameter split along dim into group->size() shards (stride blocks).
ShardSpec shard_spec(const std::shared_ptr<ProcessGroup>& group, int64_t dim, int64_t stride = 1);
// Marks t as this rank's shard of a parameter split along dim (stride blocks).
void mark_shard(const Tensor& t, const std::shared_ptr<ProcessGroup>& group, int64_t dim, int64_t stride = 1);

}  // namespace braid::dist::detail
