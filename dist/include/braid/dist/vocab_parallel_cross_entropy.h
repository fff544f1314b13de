// Cross-entropy over a vocabulary split across the tensor-parallel group (Megatron-LM's vocab_parallel_cross_entropy):
// each rank holds logits for its slice of the vocabulary and the full logits are never gathered. Three all-reduces
// of [N] values make it exact: the max of each row (for a stable exponent), the sum of the exponentials, and the
// target's logit (from the rank that holds it). Backward is local: softmax minus the one-hot of the targets this rank
// holds.
#pragma once

#include "braid/dist/parallel_regions.h"
#include "braid/nn/functional.h"

namespace braid::dist {

// logits_shard [N, V/t]: this rank's vocabulary slice [rank * V/t, (rank + 1) * V/t) of the logits; target int64
// [N] of full-vocabulary ids in [0, V). Equals nn::functional::cross_entropy on the gathered logits.
Tensor vocab_parallel_cross_entropy(const Tensor& logits_shard, const Tensor& target, const ProcessGroupPtr& group,
                                    nn::functional::Reduction reduction = nn::functional::Reduction::Mean);

}  // namespace braid::dist
