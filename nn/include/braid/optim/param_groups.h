// Parameter groups for GPT-style weight decay: weights of Linear-like layers decay; biases, LayerNorm and
// embeddings do not. A parameter decays when it has >= 2 dims and the type_name() of every module that registered
// it lacks "Embedding"; a parameter shared by several modules (weight tying) is listed once, where it was first
// registered (model.parameters()'s order).
#pragma once

#include <vector>

#include "braid/nn/module.h"
#include "braid/optim/optimizer.h"

namespace braid::optim {

// {decaying group with {"weight_decay", weight_decay}, non-decaying group with {"weight_decay", 0}}; either may be
// empty. Throws braid::Error for a negative or non-finite weight_decay.
std::vector<ParamGroup> weight_decay_groups(const nn::Module& model, double weight_decay);

}  // namespace braid::optim
