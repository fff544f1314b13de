// Gradient clipping by global norm, as torch.nn.utils.clip_grad_norm_.
#pragma once

#include <vector>

#include "braid/core/core.h"
#include "braid/nn/autograd.h"

namespace braid::optim {

// Scales all gradients so that their joint norm is at most max_norm; returns the norm before clipping.
// norm_type is 2 for the Euclidean norm or infinity for the max norm. Parameters sharded across ranks
// (nn::ParallelAttributes) are refused: dist::clip_grad_norm_ computes their norm.
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type = 2.0);

}  // namespace braid::optim
