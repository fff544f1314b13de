// Causal multi-head self-attention as GPT-2 and nanoGPT lay it out: one Linear(C, 3C) "c_attn" makes q, k and v
// for all heads (output rows [q | k | v], head h of each being rows [h*D, (h+1)*D) of its block, D = C / heads),
// scaled_dot_product_attention with is_causal runs per head, and Linear(C, C) "c_proj" mixes the heads. Dropout,
// while training, acts on the attention probabilities and on c_proj's output (nanoGPT's attn_dropout and
// resid_dropout). dist::ParallelCausalSelfAttention is the same function split by heads; from the same generator
// state both draw the same weights, c_attn's first.
#pragma once

#include "braid/nn/layers.h"
#include "braid/nn/module.h"

namespace braid::nn {

struct CausalSelfAttentionOptions {
  double dropout = 0;
  bool bias = true;
  Device device = Device::cpu();
  DType dtype = DType::Float32;
};

class CausalSelfAttentionImpl : public Module {
 public:
  CausalSelfAttentionImpl(int64_t embed_dim, int64_t num_heads, const CausalSelfAttentionOptions& options = {});
  Tensor forward(const Tensor& x);  // [B, T, C] -> [B, T, C]
  int64_t embed_dim, num_heads;
  Linear c_attn;   // Linear(C, 3C), registered first
  Linear c_proj;   // Linear(C, C)
  double dropout;  // on the attention probabilities and on c_proj's output, while training
};
// Not BRAID_MODULE: a braced options struct cannot be deduced through the holder's forwarding constructor.
class CausalSelfAttention : public ModuleHolder<CausalSelfAttentionImpl> {
 public:
  using ModuleHolder<CausalSelfAttentionImpl>::ModuleHolder;
  CausalSelfAttention(int64_t embed_dim, int64_t num_heads, const CausalSelfAttentionOptions& options = {})
      : ModuleHolder(std::make_shared<CausalSelfAttentionImpl>(embed_dim, num_heads, options)) {}
};

}  // namespace braid::nn
