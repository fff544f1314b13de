// Sequence parallelism's replicated parameters (arXiv 2205.05198). Between the tensor-parallel blocks the
// activations are split along the sequence, so a parameter every rank holds whole but applies only to its slice
// (LayerNorm's weight and bias, RowParallelLinear's bias) gets a partial gradient on each rank. Such parameters
// are marked (RowParallelLinear marks its bias itself; the model marks its LayerNorms), and after backward, once
// per optimizer step (after the last micro-batch when accumulating), all_reduce_sequence_parallel_grads sums their
// gradients over their groups, as Megatron-LM does before its optimizer step:
//   if (config.sequence_parallel) dist::mark_sequence_parallel(*ln_1, tp_group);   // at construction
//   loss.backward(); dist::all_reduce_sequence_parallel_grads(model); optimizer.step();
#pragma once

#include <memory>

#include "braid/core/tensor.h"
#include "braid/dist/process_group.h"
#include "braid/nn/module.h"

namespace braid::dist {

// Marks a replicated parameter whose gradient is summed over `group` (a sharded one is an error).
void mark_sequence_parallel(const Tensor& param, const std::shared_ptr<ProcessGroup>& group);
// Marks every parameter of the module (and its submodules), e.g. a LayerNorm.
void mark_sequence_parallel(nn::Module& module, const std::shared_ptr<ProcessGroup>& group);
bool is_sequence_parallel(const Tensor& param);
// Sums the gradient of every marked parameter of `model` over its group, in place (parameters without a gradient
// are skipped on every rank alike: all ranks of a group run the same model). Every rank of each group must call it.
void all_reduce_sequence_parallel_grads(const nn::Module& model);

}  // namespace braid::dist
