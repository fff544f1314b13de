// The evaluation pass of Pipeline::forward: the input through every stage in stage order under no-grad, each
// boundary between ranks a blocking send of a small header (ok or failed, dtype, shape) and then the activation.
// Tensors cross on the CPU whatever the stages' devices (evaluation is not the hot path, and the MPI backend then
// carries every message); the receiving stage gets its input on its first parameter's device. A stage that throws
// sends "failed" on instead of its output, so no rank waits for a tensor that will not come; one all_reduce at the
// end names the failing stage to all ranks, and its rank broadcasts the message, so every rank throws the same
// braid::Error.
#pragma once

#include <vector>

#include "braid/core/tensor.h"
#include "braid/dist/process_group.h"
#include "braid/nn/containers.h"

namespace braid::dist::detail {

// `stages` are this rank's stages (rank, rank + p, ...) of num_stages placed round-robin on `group`. Returns the
// last stage's output on its rank and an undefined tensor elsewhere.
Tensor forward_through_stages(const std::vector<nn::Sequential>& stages, ProcessGroup& group, int num_stages,
                              const Tensor& input);

}  // namespace braid::dist::detail
