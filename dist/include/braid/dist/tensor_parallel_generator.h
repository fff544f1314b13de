// The random numbers of a tensor-parallel region (Megatron-LM's model-parallel RNG). Dropout on what every rank of
// the group holds whole (a row-parallel layer's all-reduced output) must draw the same mask on every rank, which
// the default generator does: its state is the same everywhere. Dropout on what each rank holds a different part of
// (its own attention heads; its slice of the sequence under sequence parallelism) must draw independent masks, or
// every rank's part would be dropped in the same pattern: those draws come from this generator, one per group,
// seeded differently on each rank of the group and shared by all of the group's layers (so layers do not repeat
// each other's masks either).
#pragma once

#include <cstdint>

#include "braid/core/random.h"
#include "braid/dist/parallel_regions.h"

namespace braid::dist {

// This rank's generator for the parts of `group`'s tensor-parallel regions that differ between ranks. Made on first
// use from seed 0 (see manual_seed_tensor_parallel).
Generator& tensor_parallel_generator(const ProcessGroupPtr& group);
// Reseeds this rank's generator of `group` with a value derived from `seed` and the rank in the group (the same
// seed on every rank gives every rank a different, reproducible stream).
void manual_seed_tensor_parallel(const ProcessGroupPtr& group, uint64_t seed);

}  // namespace braid::dist
