// Gradient clipping by global norm for a model whose parameters may be sharded across ranks: the norm is that of
// the whole, unsplit model's gradient, the same on every rank, so every rank scales by the same factor.
//
// Each parameter says what it is through its parallel attributes (nn/parallel_attributes.h):
// - a sharded parameter (num_shards > 1) holds one shard of a larger tensor: its |g|^p is summed over the ranks
//   of its own attribute group (the tensor-parallel group), so each shard counts once;
// - a parameter without attributes is replicated: every rank holding it has the same gradient (DDP made it so
//   across data-parallel replicas, the layer's design across the tensor-parallel group), so each rank counts it
//   once, locally, and it is never summed over a group.
// That makes the result right for any data x tensor layout without a group argument. `group`, where given, is the
// group whose ranks hold different parameters apart from shards (the pipeline stages of one replica): the totals
// are summed over it last. It must meet every shard group in this rank alone (a tensor-parallel or model-parallel
// group there would count shards and replicas several times, and is refused).
//
// Every rank of a shard group must pass its sharded parameters in the same order (as ranks of one model do), and
// take part even where some gradients are undefined: the collectives follow the first appearance of each group in
// `params`. The reductions run in float64 on the parameters' device.
#pragma once

#include <memory>
#include <vector>

#include "braid/core/tensor.h"
#include "braid/dist/process_group.h"

namespace braid::dist {

// Scales every gradient so that the joint norm is at most max_norm; returns the norm before clipping.
// norm_type is any p > 0, or infinity for the max norm.
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type = 2.0);
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm,
                       const std::shared_ptr<ProcessGroup>& group, double norm_type = 2.0);

}  // namespace braid::dist
