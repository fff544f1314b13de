// Scaled dot-product attention from batched GEMMs (ops::bmm) and one fused softmax: the heads are folded into the
// GEMMs' batch ([B, H, T, D] -> [B*H, T, D]), k^T, P^T and dS^T are transposed views that BLAS reads as such, and the
// softmax scales, masks (causal) and normalises each row of q @ k^T in one pass, so no scaled copy of the scores
// and no -inf mask tensor exist.
#include <cmath>

#include "braid/nn/functional.h"

namespace braid::nn::functional {

namespace {

constexpr const char* kOp = "scaled_dot_product_attention";

void check_operand(const char* what, const Tensor& t) {
  BRAID_CHECK(t.defined(), kOp, ": ", what, " is undefined");
  BRAID_CHECK(t.dim() == 4, kOp, ": ", what, " must be [batch, heads, seq, head_dim], got ", shape_str(t.shape()));
  BRAID_CHECK(is_floating(t.dtype()), kOp, ": ", what, " must be floating-point, got ", t.dtype());
}

void check_arguments(const Tensor& q, const Tensor& k, const Tensor& v, bool is_causal, double dropout_p,
                     std::optional<double> scale) {
  check_operand("query", q);
  check_operand("key", k);
  check_operand("value", v);
  for (const Tensor* t : {&k, &v}) {
    const char* what = t == &k ? "key" : "value";
    BRAID_CHECK(t->dtype() == q.dtype(), kOp, ": ", what, " is ", t->dtype(), " but query is ", q.dtype());
    BRAID_CHECK(t->device() == q.device(), kOp, ": ", what, " is on ", t->device(), " but query is on ", q.device());
  }
  const Shape &qs = q.shape(), &ks = k.shape(), &vs = v.shape();
  BRAID_CHECK(ks[0] == qs[0] && ks[1] == qs[1] && ks[3] == qs[3], kOp, ": key ", shape_str(ks),
              " does not match query ", shape_str(qs), " (expected [", qs[0], ", ", qs[1], ", seq, ", qs[3], "])");
  BRAID_CHECK(vs[0] == ks[0] && vs[1] == ks[1] && vs[2] == ks[2], kOp, ": value ", shape_str(vs),
              " does not match key ", shape_str(ks), " (expected [", ks[0], ", ", ks[1], ", ", ks[2], ", dim])");
  BRAID_CHECK(!is_causal || qs[2] == ks[2], kOp, ": is_causal needs as many queries as keys, got query ", shape_str(qs),
              " and key ", shape_str(ks));
  BRAID_CHECK(dropout_p >= 0 && dropout_p <= 1, kOp, ": dropout_p must be in [0, 1], got ", dropout_p);
  BRAID_CHECK(!scale || std::isfinite(*scale), kOp, ": scale must be finite, got ", scale.value_or(0));
}

// The factor each attention probability is multiplied by: 0 where dropped, 1 / (1 - p) where kept.
Tensor dropout_factor(const Tensor& probs, double p, Generator* gen) {
  if (p == 1) return zeros_like(probs);
  const TensorOptions opts(probs.dtype(), probs.device());
  Tensor keep = ops::binary(ops::BinaryOp::Lt, rand(probs.shape(), opts, gen), scalar_tensor(1 - p, opts));
  return ops::affine(keep, 1.0 / (1 - p), 0);
}

}  // namespace

Tensor scaled_dot_product_attention(const Tensor& query, const Tensor& key, const Tensor& value, bool is_causal,
                                    double dropout_p, std::optional<double> scale, Generator* gen) {
  check_arguments(query, key, value, is_causal, dropout_p, scale);
  const int64_t b = query.shape()[0], h = query.shape()[1], t = query.shape()[2], d = query.shape()[3];
  const int64_t s = key.shape()[2], dv = value.shape()[3];
  const double sc = scale.value_or(1.0 / std::sqrt(double(d)));
  Tensor q = ops::reshape(query, {b * h, t, d}), k = ops::reshape(key, {b * h, s, d});
  Tensor v = ops::reshape(value, {b * h, s, dv});
  Tensor probs = ops::attention_softmax(ops::bmm(q, ops::transpose(k, 1, 2)), sc, is_causal);
  Tensor factor = dropout_p > 0 ? dropout_factor(probs, dropout_p, gen) : Tensor();
  Tensor attn = factor.defined() ? ops::binary(ops::BinaryOp::Mul, probs, factor) : probs;
  Tensor out = ops::view(ops::bmm(attn, v), {b, h, t, dv});
  if (!autograd::any_requires_grad({query, key, value})) return out;

  const bool nq = query.requires_grad(), nk = key.requires_grad(), nv = value.requires_grad();
  const bool scores_grad = nq || nk;
  // Exactly what each gradient reads: dq needs k, dk needs q, both need v, P and the dropout factor; dv needs
  // the dropped-out probabilities.
  Tensor saved_q = nk ? q : Tensor(), saved_k = nq ? k : Tensor(), saved_v = scores_grad ? v : Tensor();
  Tensor saved_p = scores_grad ? probs : Tensor(), saved_f = scores_grad ? factor : Tensor();
  Tensor saved_attn = nv ? attn : Tensor();
  return autograd::record(
      "ScaledDotProductAttentionBackward", out, {query, key, value},
      [q = saved_q, k = saved_k, v = saved_v, p = saved_p, f = saved_f, a = saved_attn, sc, is_causal, nq, nk, nv,
       qs = query.shape(), ks = key.shape(), vs = value.shape()](const Tensor& grad) {
        const Tensor g = ops::reshape(grad, {qs[0] * qs[1], qs[2], vs[3]});
        std::vector<Tensor> grads(3);
        if (nv) grads[2] = ops::view(ops::bmm(ops::transpose(a, 1, 2), g), vs);
        if (!nq && !nk) return grads;
        Tensor dp = ops::bmm(g, ops::transpose(v, 1, 2));
        if (f.defined()) dp = ops::binary(ops::BinaryOp::Mul, dp, f);
        const Tensor ds = ops::attention_softmax_backward(dp, p, sc, is_causal);
        if (nq) grads[0] = ops::view(ops::bmm(ds, k), qs);
        if (nk) grads[1] = ops::view(ops::bmm(ops::transpose(ds, 1, 2), q), ks);
        return grads;
      },
      {saved_q, saved_k, saved_v, saved_p, saved_f, saved_attn});
}

}  // namespace braid::nn::functional
