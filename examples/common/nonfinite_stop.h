// --stop-on-nonfinite for the examples: the check after each backward that ends a diverged run at the step where
// the loss or a gradient first became NaN or infinite, on every rank of the job alike.
#pragma once

#include <braid/braid.h>

#include <string>
#include <utility>
#include <vector>

namespace braid::examples {

// Throws braid::Error on every rank of `group` when, on any rank, `loss` (undefined on a rank that computes none)
// or a gradient of `named_parameters` is NaN or infinite. The message names `step` ("epoch 2 step 31"), the first
// rank that found one, and its first non-finite gradient ("--stop-on-nonfinite: epoch 2 step 31: rank 1: the
// gradient of 0.weight[3, 7] is nan (the loss is nan)"). With a null group or one of a single rank, this process
// alone. Every rank of `group` must call it at every step.
void stop_on_nonfinite(const std::string& step, const Tensor& loss,
                       const std::vector<std::pair<std::string, Tensor>>& named_parameters, dist::ProcessGroup* group);

}  // namespace braid::examples
