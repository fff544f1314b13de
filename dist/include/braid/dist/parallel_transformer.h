// The Transformer's two tensor-parallel blocks (Megatron-LM, arXiv 1909.08053): causal self-attention split by
// heads (QKV column-parallel with partition stride 3, so each rank holds the q, k and v rows of its heads; the
// output projection row-parallel) and the MLP (column-parallel up-projection, GELU(tanh), row-parallel
// down-projection). Each block costs one all-reduce forward and one backward (or, with sequence_parallel, one
// all-gather and one reduce-scatter each way, the activations between blocks being [B, T/t, C] split along T).
// From the same generator state, with init_std 0 and dropout 0, ParallelCausalSelfAttention is the same function as
// nn::CausalSelfAttention(C, H) and ParallelMLP as Linear(C, hidden) -> GELU(tanh) -> Linear(hidden, C), on any
// group size. Dropout on what every rank holds whole draws from the default generator (the same mask everywhere); on
// the attention probabilities of a rank's own heads, and on sequence-parallel slices, from the rank's
// tensor_parallel_generator (tensor_parallel_generator.h).
#pragma once

#include <cstdint>
#include <memory>

#include "braid/dist/column_parallel_linear.h"
#include "braid/dist/row_parallel_linear.h"

namespace braid::dist {

struct ParallelTransformerOptions {
  double dropout = 0;
  bool bias = true;
  bool sequence_parallel = false;
  // 0 = nn defaults (nn::Linear's init); GPT-2: init_std 0.02 (c_attn, c_fc) and proj_init_std 0.02/sqrt(2*n_layer)
  // (both c_proj), biases zero.
  double init_std = 0;
  double proj_init_std = 0;
  Device device = Device::cpu();
  DType dtype = DType::Float32;
};

// Module name "ParallelCausalSelfAttention"; children "c_attn" (ColumnParallelLinear(C, 3C), stride 3) and "c_proj"
// (RowParallelLinear(C, C)). forward: [B, T, C] -> [B, T, C] (or [B, T/t, C] both ways with sequence_parallel).
class ParallelCausalSelfAttentionImpl : public nn::Module {
 public:
  ParallelCausalSelfAttentionImpl(int64_t embed_dim, int64_t num_heads, ProcessGroupPtr group,
                                  const ParallelTransformerOptions& options = {});
  Tensor forward(const Tensor& x);

  int64_t embed_dim, num_heads;  // of the full layer
  ProcessGroupPtr group;
  ColumnParallelLinear c_attn;
  RowParallelLinear c_proj;
  double dropout;  // on the attention probabilities and on c_proj's output, while training
};

// Module name "ParallelMLP"; children "c_fc" (ColumnParallelLinear(C, hidden)) and "c_proj"
// (RowParallelLinear(hidden, C)); dropout on the output while training.
class ParallelMLPImpl : public nn::Module {
 public:
  ParallelMLPImpl(int64_t embed_dim, int64_t hidden_dim, ProcessGroupPtr group,
                  const ParallelTransformerOptions& options = {});
  Tensor forward(const Tensor& x);

  int64_t embed_dim, hidden_dim;
  ProcessGroupPtr group;
  ColumnParallelLinear c_fc;
  RowParallelLinear c_proj;
  double dropout;
};

class ParallelCausalSelfAttention : public nn::ModuleHolder<ParallelCausalSelfAttentionImpl> {
 public:
  using nn::ModuleHolder<ParallelCausalSelfAttentionImpl>::ModuleHolder;
  ParallelCausalSelfAttention(int64_t embed_dim, int64_t num_heads, ProcessGroupPtr group,
                              const ParallelTransformerOptions& options = {})
      : ModuleHolder(
            std::make_shared<ParallelCausalSelfAttentionImpl>(embed_dim, num_heads, std::move(group), options)) {}
};

class ParallelMLP : public nn::ModuleHolder<ParallelMLPImpl> {
 public:
  using nn::ModuleHolder<ParallelMLPImpl>::ModuleHolder;
  ParallelMLP(int64_t embed_dim, int64_t hidden_dim, ProcessGroupPtr group,
              const ParallelTransformerOptions& options = {})
      : ModuleHolder(std::make_shared<ParallelMLPImpl>(embed_dim, hidden_dim, std::move(group), options)) {}
};

}  // namespace braid::dist
