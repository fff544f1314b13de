#include "braid/nn/attention.h"

namespace braid::nn {

namespace {
LinearOptions linear_options(const CausalSelfAttentionOptions& o) {
  return {.bias = o.bias, .device = o.device, .dtype = o.dtype};
}

// Checked before any weight is drawn, so a bad configuration does not advance the generator.
int64_t checked_embed_dim(int64_t embed_dim, int64_t num_heads, double dropout) {
  BRAID_CHECK(embed_dim > 0 && num_heads > 0, "CausalSelfAttention: embed_dim and num_heads must be positive, got ",
              embed_dim, " and ", num_heads);
  BRAID_CHECK(embed_dim % num_heads == 0, "CausalSelfAttention: embed_dim ", embed_dim,
              " does not divide by num_heads ", num_heads);
  BRAID_CHECK(dropout >= 0 && dropout <= 1, "CausalSelfAttention: dropout must be in [0, 1], got ", dropout);
  return embed_dim;
}
}  // namespace

CausalSelfAttentionImpl::CausalSelfAttentionImpl(int64_t c, int64_t heads, const CausalSelfAttentionOptions& o)
    : Module("CausalSelfAttention"),
      embed_dim(checked_embed_dim(c, heads, o.dropout)),
      num_heads(heads),
      c_attn(register_module("c_attn", Linear(c, 3 * c, linear_options(o)))),
      c_proj(register_module("c_proj", Linear(c, c, linear_options(o)))),
      dropout(o.dropout) {}

Tensor CausalSelfAttentionImpl::forward(const Tensor& x) {
  BRAID_CHECK(x.defined() && x.dim() == 3 && x.shape()[2] == embed_dim,
              "CausalSelfAttention: expected input [batch, sequence, ", embed_dim, "], got ",
              x.defined() ? shape_str(x.shape()) : std::string("an undefined tensor"));
  const int64_t b = x.shape()[0], t = x.shape()[1], d = embed_dim / num_heads;
  Tensor qkv = c_attn(x);
  // [B, T, C] block i of qkv as [B, H, T, D]: views, no copies.
  auto heads = [&](int64_t i) {
    return transpose(view(narrow(qkv, 2, i * embed_dim, embed_dim), {b, t, num_heads, d}), 1, 2);
  };
  const double p = is_training() ? dropout : 0.0;
  Tensor y = functional::scaled_dot_product_attention(heads(0), heads(1), heads(2), true, p);
  y = reshape(transpose(y, 1, 2), {b, t, embed_dim});
  return functional::dropout(c_proj(y), dropout, is_training());
}

}  // namespace braid::nn
