#include "braid/dist/parallel_transformer.h"
#include "braid/dist/tensor_parallel_generator.h"
#include "parallel_transformer_options.h"
#include "tensor_parallel_layer.h"

namespace braid::dist {

ParallelCausalSelfAttentionImpl::ParallelCausalSelfAttentionImpl(int64_t c, int64_t heads, ProcessGroupPtr g,
                                                                 const ParallelTransformerOptions& o)
    : nn::Module("ParallelCausalSelfAttention"),
      embed_dim(c),
      num_heads(heads),
      group(std::move(g)),
      c_attn(nullptr),
      c_proj(nullptr),
      dropout(o.dropout) {
  const char* name = "ParallelCausalSelfAttention";
  detail::check_layer_sizes(name, group, {{"embed_dim", c, false}, {"num_heads", heads, true}});
  BRAID_CHECK(c % heads == 0, name, ": embed_dim ", c, " does not divide by num_heads ", heads);
  BRAID_CHECK(o.dropout >= 0 && o.dropout <= 1, name, ": dropout must be in [0, 1], got ", o.dropout);
  c_attn = register_module("c_attn", ColumnParallelLinear(c, 3 * c, group, detail::input_projection_options(o, 3)));
  c_proj = register_module("c_proj", RowParallelLinear(c, c, group, detail::output_projection_options(o)));
}

Tensor ParallelCausalSelfAttentionImpl::forward(const Tensor& x) {
  BRAID_CHECK(x.defined() && x.dim() == 3, "ParallelCausalSelfAttention: expected input [batch, sequence, ", embed_dim,
              "], got ", x.defined() ? shape_str(x.shape()) : "undefined");
  Tensor qkv = c_attn(x);  // [B, T, 3C/t]: this rank's q, k and v rows, in that order
  const int64_t b = qkv.shape()[0], t = qkv.shape()[1], local = embed_dim / group->size();
  const int64_t heads = num_heads / group->size(), head_dim = embed_dim / num_heads;
  auto split = [&](int64_t i) {
    return transpose(reshape(narrow(qkv, 2, i * local, local), {b, t, heads, head_dim}), 1, 2);
  };
  // Each rank's heads are its own, so their dropout masks come from the rank's own stream; the output is whole on
  // every rank (the same mask everywhere, the default generator) unless sequence parallelism split it.
  double p = is_training() ? dropout : 0.0;
  Generator& own = tensor_parallel_generator(group);
  Tensor y = nn::functional::scaled_dot_product_attention(split(0), split(1), split(2), true, p, std::nullopt, &own);
  y = reshape(transpose(y, 1, 2), {b, t, local});
  return nn::functional::dropout(c_proj(y), dropout, is_training(), c_proj->options.sequence_parallel ? &own : nullptr);
}

}  // namespace braid::dist
