// One checkpoint for any tensor-parallel size. gather_full_state_dict puts every sharded parameter back together
// (recognised by its nn::ParallelAttributes: shard dim, shard count and partition stride), so the result is the
// state dict the unsplit model would have and nn::save writes the file that model would write.
// load_full_state_dict does the reverse for a model of any tensor-parallel size: each rank copies its shard.
#pragma once

#include "braid/nn/module.h"

namespace braid::dist {

// Full (unsplit) tensors on every rank, named and ordered as model.state_dict(). Collective: every rank of every
// shard group must call it (the shards are all-gathered, in name order); replicated entries are not copied.
nn::StateDict gather_full_state_dict(const nn::Module& model);
// Copies each rank's shard of `full` into the model (no communication). The names must be exactly the model's; a
// full shape that does not split into the model's shards, or a dtype that differs, is a braid::Error naming the
// parameter, and then nothing has been changed.
void load_full_state_dict(nn::Module& model, const nn::StateDict& full);

}  // namespace braid::dist
