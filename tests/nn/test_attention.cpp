// scaled_dot_product_attention and nn::CausalSelfAttention: values against a direct computation in plain C++,
// the causal mask's exact zeros, numerical stability, dropout, float64 finite-difference gradients (causal and not,
// default and explicit scale, fewer keys than queries, strided views), the saved-tensor version checks, and the
// argument errors.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "../test_util.h"
#include "braid/braid.h"
#include "gradcheck.h"

using namespace braid;
namespace F = braid::nn::functional;
using braid::test::error_of;
using braid::test::gradcheck;
using braid::test::Inputs;

namespace {

struct Dims {
  int64_t b, h, t, s, d, dv;
};

// softmax(scale * q k^T (masked)) v per (batch, head), in double, from the tensors' values.
std::vector<double> direct_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Dims& n, bool causal,
                                     double scale) {
  const std::vector<double> qv = q.to_vector<double>(), kv = k.to_vector<double>(), vv = v.to_vector<double>();
  std::vector<double> out(size_t(n.b * n.h * n.t * n.dv), 0.0);
  for (int64_t bh = 0; bh < n.b * n.h; ++bh) {
    for (int64_t i = 0; i < n.t; ++i) {
      const int64_t keys = causal ? i + 1 : n.s;
      std::vector<double> w(static_cast<size_t>(keys));
      double m = -INFINITY, sum = 0;
      for (int64_t j = 0; j < keys; ++j) {
        double dot = 0;
        for (int64_t e = 0; e < n.d; ++e)
          dot += qv[size_t((bh * n.t + i) * n.d + e)] * kv[size_t((bh * n.s + j) * n.d + e)];
        w[size_t(j)] = scale * dot;
        m = std::max(m, w[size_t(j)]);
      }
      for (double& x : w) sum += (x = std::exp(x - m));
      for (int64_t j = 0; j < keys; ++j)
        for (int64_t e = 0; e < n.dv; ++e)
          out[size_t((bh * n.t + i) * n.dv + e)] += w[size_t(j)] / sum * vv[size_t((bh * n.s + j) * n.dv + e)];
    }
  }
  return out;
}

Tensor randn_of(const Shape& s, DType dt, Generator& g, double std = 1) { return normal(s, 0, std, dt, &g); }

Tensor leaf(const Shape& s, Generator& g) { return randn(s, DType::Float64, &g).requires_grad_(); }

void expect_near_all(const std::vector<double>& got, const std::vector<double>& want, double tol) {
  ASSERT_EQ(got.size(), want.size());
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (!(std::abs(got[i] - want[i]) <= worst)) worst = std::abs(got[i] - want[i]), at = i;
  EXPECT_LE(worst, tol) << "element " << at << ": got " << got[at] << ", want " << want[at];
}

}  // namespace

TEST(ScaledDotProductAttention, MatchesDirectComputation) {
  Generator g(1);
  for (DType dt : {DType::Float64, DType::Float32}) {
    for (const Dims n : {Dims{2, 3, 5, 5, 4, 4}, Dims{1, 2, 3, 7, 4, 6}, Dims{2, 1, 33, 33, 8, 8}}) {
      for (bool causal : {false, true}) {
        if (causal && n.t != n.s) continue;
        for (std::optional<double> scale : {std::optional<double>(), std::optional<double>(0.3)}) {
          SCOPED_TRACE(testing::Message() << dt << " T " << n.t << " S " << n.s << " causal " << causal << " scale "
                                          << scale.value_or(-1));
          Tensor q = randn_of({n.b, n.h, n.t, n.d}, dt, g), k = randn_of({n.b, n.h, n.s, n.d}, dt, g);
          Tensor v = randn_of({n.b, n.h, n.s, n.dv}, dt, g);
          Tensor y = F::scaled_dot_product_attention(q, k, v, causal, 0.0, scale);
          EXPECT_EQ(y.shape(), (Shape{n.b, n.h, n.t, n.dv}));
          EXPECT_EQ(y.dtype(), dt);
          const double sc = scale.value_or(1 / std::sqrt(double(n.d)));
          expect_near_all(y.to_vector<double>(), direct_attention(q, k, v, n, causal, sc),
                          dt == DType::Float64 ? 1e-12 : 2e-6);
        }
      }
    }
  }
}

TEST(ScaledDotProductAttention, CausalMaskedProbabilitiesAreExactlyZero) {
  Generator g(2);
  Tensor scores = randn_of({3, 6, 6}, DType::Float32, g, 5);
  const std::vector<double> p = ops::attention_softmax(scores, 0.7, true).to_vector<double>();
  for (int64_t b = 0; b < 3; ++b) {
    for (int64_t i = 0; i < 6; ++i) {
      double row = 0;
      for (int64_t j = 0; j < 6; ++j) {
        const double x = p[size_t((b * 6 + i) * 6 + j)];
        if (j > i)
          EXPECT_EQ(x, 0.0) << "b " << b << " i " << i << " j " << j;
        else
          EXPECT_GT(x, 0.0);
        row += x;
      }
      EXPECT_NEAR(row, 1.0, 1e-6);
    }
  }
  // The first query sees only the first key, with probability exactly 1: its output is that value row, exactly.
  Tensor q = randn_of({2, 2, 4, 3}, DType::Float32, g), k = randn_of({2, 2, 4, 3}, DType::Float32, g);
  Tensor v = randn_of({2, 2, 4, 5}, DType::Float32, g);
  Tensor y = F::scaled_dot_product_attention(q, k, v, true);
  EXPECT_EQ(ops::select(y, 2, 0).to_vector<float>(), ops::select(v, 2, 0).to_vector<float>());
}

TEST(ScaledDotProductAttention, CausalOutputsIgnoreLaterPositions) {
  Generator g(3);
  Tensor q = randn_of({1, 2, 6, 4}, DType::Float64, g), k = randn_of({1, 2, 6, 4}, DType::Float64, g);
  Tensor v = randn_of({1, 2, 6, 4}, DType::Float64, g);
  Tensor y = F::scaled_dot_product_attention(q, k, v, true);
  // Change everything at positions 3..5 of q, k and v: outputs 0..2 must not move at all.
  Tensor q2 = ops::clone(q), k2 = ops::clone(k), v2 = ops::clone(v);
  for (const Tensor& t : {q2, k2, v2}) ops::fill_(ops::narrow(t, 2, 3, 3), 100.0);
  Tensor y2 = F::scaled_dot_product_attention(q2, k2, v2, true);
  EXPECT_EQ(ops::narrow(y2, 2, 0, 3).to_vector<double>(), ops::narrow(y, 2, 0, 3).to_vector<double>());
  EXPECT_NE(ops::narrow(y2, 2, 3, 3).to_vector<double>(), ops::narrow(y, 2, 3, 3).to_vector<double>());
}

TEST(ScaledDotProductAttention, LargeScoresStayFinite) {
  Generator g(4);
  const Dims n{1, 2, 8, 8, 4, 4};
  // Scores in the thousands: exp without the row max subtracted would overflow float32 (and float64 near 710).
  Tensor q = randn_of({1, 2, 8, 4}, DType::Float32, g, 40), k = randn_of({1, 2, 8, 4}, DType::Float32, g, 40);
  Tensor v = randn_of({1, 2, 8, 4}, DType::Float32, g);
  for (bool causal : {false, true}) {
    Tensor y = F::scaled_dot_product_attention(q, k, v, causal);
    for (double x : y.to_vector<double>()) ASSERT_TRUE(std::isfinite(x));
    expect_near_all(y.to_vector<double>(), direct_attention(q, k, v, n, causal, 0.5), 1e-4);
  }
}

TEST(ScaledDotProductAttention, GradientsMatchFiniteDifferences) {
  Generator g(5);
  for (bool causal : {false, true}) {
    for (std::optional<double> scale : {std::optional<double>(), std::optional<double>(0.7)}) {
      SCOPED_TRACE(testing::Message() << "causal " << causal << " scale " << scale.value_or(-1));
      Tensor q = leaf({2, 2, 4, 3}, g), k = leaf({2, 2, 4, 3}, g), v = leaf({2, 2, 4, 5}, g);
      EXPECT_TRUE(gradcheck(
          [&](const Inputs& in) { return F::scaled_dot_product_attention(in[0], in[1], in[2], causal, 0, scale); },
          {q, k, v}));
    }
  }
}

TEST(ScaledDotProductAttention, GradientsWithMoreKeysThanQueries) {
  Generator g(6);
  for (std::optional<double> scale : {std::optional<double>(), std::optional<double>(1.3)}) {
    Tensor q = leaf({1, 2, 3, 4}, g), k = leaf({1, 2, 6, 4}, g), v = leaf({1, 2, 6, 2}, g);
    EXPECT_TRUE(gradcheck(
        [&](const Inputs& in) { return F::scaled_dot_product_attention(in[0], in[1], in[2], false, 0, scale); },
        {q, k, v}));
  }
}

// As CausalSelfAttention feeds it: q, k and v are transposed views ([B, T, H, D] -> [B, H, T, D]).
TEST(ScaledDotProductAttention, GradientsThroughStridedViews) {
  Generator g(7);
  Tensor q = leaf({2, 4, 2, 3}, g), k = leaf({2, 4, 2, 3}, g), v = leaf({2, 4, 2, 3}, g);
  EXPECT_TRUE(gradcheck(
      [](const Inputs& in) {
        Tensor y = F::scaled_dot_product_attention(transpose(in[0], 1, 2), transpose(in[1], 1, 2),
                                                   transpose(in[2], 1, 2), true);
        return transpose(y, 1, 2);
      },
      {q, k, v}));
}

TEST(ScaledDotProductAttention, GradientOfOneInputAlone) {
  Generator g(8);
  Tensor q = leaf({1, 2, 4, 3}, g), k = leaf({1, 2, 4, 3}, g), v = leaf({1, 2, 4, 3}, g);
  for (int which = 0; which < 3; ++which) {
    SCOPED_TRACE(which);
    EXPECT_TRUE(gradcheck(
        [&](const Inputs& in) {
          Tensor a = which == 0 ? in[0] : q.detach(), b = which == 1 ? in[0] : k.detach();
          Tensor c = which == 2 ? in[0] : v.detach();
          return F::scaled_dot_product_attention(a, b, c, true);
        },
        {which == 0   ? q
         : which == 1 ? k
                      : v}));
  }
}

TEST(ScaledDotProductAttention, DropoutDropsProbabilitiesAndScalesTheRest) {
  Generator g(9);
  const int64_t t = 6;
  Tensor q = randn_of({2, 1, t, 4}, DType::Float64, g), k = randn_of({2, 1, t, 4}, DType::Float64, g);
  // Identity values: the output is the attention matrix itself.
  std::vector<double> identity(size_t(2 * t * t), 0.0);
  for (int64_t i = 0; i < 2 * t; ++i) identity[size_t(i * t + i % t)] = 1;
  Tensor v = from_vector(identity, {2, 1, t, t});
  const std::vector<double> p = F::scaled_dot_product_attention(q, k, v, true).to_vector<double>();
  Generator d1(42), d2(42);
  const std::vector<double> a = F::scaled_dot_product_attention(q, k, v, true, 0.4, {}, &d1).to_vector<double>();
  EXPECT_EQ(a, F::scaled_dot_product_attention(q, k, v, true, 0.4, {}, &d2).to_vector<double>());
  int dropped = 0, kept = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == 0) {
      EXPECT_EQ(a[i], 0.0);
    } else if (a[i] == 0) {
      ++dropped;
    } else {
      ++kept;
      EXPECT_NEAR(a[i], p[i] / 0.6, 1e-15);
    }
  }
  EXPECT_GT(dropped, 0);
  EXPECT_GT(kept, 0);
  for (double x : F::scaled_dot_product_attention(q, k, v, true, 1.0).to_vector<double>()) EXPECT_EQ(x, 0.0);
}

TEST(ScaledDotProductAttention, GradientsWithDropoutMatchFiniteDifferences) {
  Generator g(10);
  Tensor q = leaf({1, 2, 4, 3}, g), k = leaf({1, 2, 4, 3}, g), v = leaf({1, 2, 4, 3}, g);
  EXPECT_TRUE(gradcheck(
      [](const Inputs& in) {
        Generator mask(77);  // the same mask at every evaluation
        return F::scaled_dot_product_attention(in[0], in[1], in[2], true, 0.3, {}, &mask);
      },
      {q, k, v}));
}

TEST(ScaledDotProductAttention, SavedInputWrittenInPlaceIsAnError) {
  Generator g(11);
  Tensor q = leaf({1, 1, 3, 2}, g), k = leaf({1, 1, 3, 2}, g), v = leaf({1, 1, 3, 2}, g);
  Tensor y = F::scaled_dot_product_attention(q, k, v, true);
  {
    NoGradGuard no_grad;
    ops::mul_(k, 2.0);
  }
  EXPECT_CONTAINS(error_of([&] { sum(y).backward(); }), "ScaledDotProductAttentionBackward");
}

TEST(ScaledDotProductAttention, RecordsNothingWithoutGrad) {
  Generator g(12);
  Tensor q = leaf({1, 1, 3, 2}, g);
  Tensor y = F::scaled_dot_product_attention(q.detach(), q.detach(), q.detach());
  EXPECT_FALSE(y.requires_grad());
  NoGradGuard no_grad;
  EXPECT_FALSE(F::scaled_dot_product_attention(q, q, q).requires_grad());
}

TEST(ScaledDotProductAttention, BadArgumentsAreErrors) {
  Tensor q = zeros({2, 3, 4, 5}), k = zeros({2, 3, 6, 5}), v = zeros({2, 3, 6, 7});
  auto sdpa = [](const Tensor& a, const Tensor& b, const Tensor& c, bool causal = false, double p = 0) {
    return [=] { F::scaled_dot_product_attention(a, b, c, causal, p); };
  };
  braid::test::expect_error(sdpa(zeros({2, 3, 4}), k, v), {"scaled_dot_product_attention", "query", "[2, 3, 4]"});
  braid::test::expect_error(sdpa(q, zeros({3, 6, 5}), v), {"key", "[batch, heads, seq, head_dim]"});
  braid::test::expect_error(sdpa(q, zeros({2, 3, 6, 4}), v), {"key", "[2, 3, 6, 4]", "does not match query"});
  braid::test::expect_error(sdpa(q, zeros({2, 2, 6, 5}), v), {"key", "does not match query"});
  braid::test::expect_error(sdpa(q, k, zeros({2, 3, 5, 7})), {"value", "[2, 3, 5, 7]", "does not match key"});
  braid::test::expect_error(sdpa(q, k, v, true), {"is_causal", "[2, 3, 4, 5]", "[2, 3, 6, 5]"});
  braid::test::expect_error(sdpa(q, ops::to_dtype(k, DType::Float64), v), {"key", "float64", "float32"});
  braid::test::expect_error(sdpa(ops::to_dtype(q, DType::Int64), k, v), {"query", "floating-point", "int64"});
  braid::test::expect_error(sdpa(q, k, v, false, 1.5), {"dropout_p", "1.5"});
  braid::test::expect_error(sdpa(Tensor(), k, v), {"query", "undefined"});
  braid::test::expect_error([&] { F::scaled_dot_product_attention(q, k, v, false, 0, INFINITY); }, {"scale"});
}

// ---- CausalSelfAttention ----

TEST(CausalSelfAttention, ParametersAreNanoGptsInOrder) {
  nn::CausalSelfAttention attn(8, 2);
  EXPECT_EQ(attn->type_name(), "CausalSelfAttention");
  EXPECT_EQ(braid::test::names_of(attn->named_parameters()),
            (std::vector<std::string>{"c_attn.weight", "c_attn.bias", "c_proj.weight", "c_proj.bias"}));
  EXPECT_EQ(attn->c_attn->weight.shape(), (Shape{24, 8}));
  EXPECT_EQ(attn->c_proj->weight.shape(), (Shape{8, 8}));
  nn::CausalSelfAttention plain(8, 4, {.bias = false, .dtype = DType::Float64});
  EXPECT_EQ(braid::test::names_of(plain->named_parameters()),
            (std::vector<std::string>{"c_attn.weight", "c_proj.weight"}));
  EXPECT_EQ(plain->c_attn->weight.dtype(), DType::Float64);
}

// ParallelCausalSelfAttention relies on it: the same seed gives the weights of Linear(C, 3C) then Linear(C, C).
TEST(CausalSelfAttention, DrawsTheWeightsOfItsTwoLinearsInOrder) {
  manual_seed(123);
  nn::CausalSelfAttention attn(6, 3);
  manual_seed(123);
  nn::Linear first(6, 18), second(6, 6);
  EXPECT_EQ(attn->c_attn->weight.to_vector<float>(), first->weight.to_vector<float>());
  EXPECT_EQ(attn->c_attn->bias.to_vector<float>(), first->bias.to_vector<float>());
  EXPECT_EQ(attn->c_proj->weight.to_vector<float>(), second->weight.to_vector<float>());
  EXPECT_EQ(attn->c_proj->bias.to_vector<float>(), second->bias.to_vector<float>());
}

TEST(CausalSelfAttention, ForwardIsHeadsOfTheQkvProjection) {
  manual_seed(5);
  const int64_t b = 2, t = 5, c = 6, h = 3, d = 2;
  nn::CausalSelfAttention attn(c, h, {.dtype = DType::Float64});
  Generator g(13);
  Tensor x = randn({b, t, c}, DType::Float64, &g);
  Tensor y = attn(x);
  ASSERT_EQ(y.shape(), (Shape{b, t, c}));
  // nanoGPT: q, k, v = c_attn(x).split(C, dim=2); each .view(B, T, H, D).transpose(1, 2).
  Tensor qkv = attn->c_attn(x);
  std::vector<Tensor> parts;
  for (int i = 0; i < 3; ++i)
    parts.push_back(ops::contiguous(ops::transpose(ops::reshape(ops::narrow(qkv, 2, i * c, c), {b, t, h, d}), 1, 2)));
  const std::vector<double> heads =
      direct_attention(parts[0], parts[1], parts[2], Dims{b, h, t, t, d, d}, true, 1 / std::sqrt(double(d)));
  Tensor merged = ops::reshape(ops::transpose(from_vector(heads, {b, h, t, d}), 1, 2), {b, t, c});
  expect_near_all(y.to_vector<double>(), attn->c_proj(merged).to_vector<double>(), 1e-12);
}

TEST(CausalSelfAttention, OutputsIgnoreLaterTokens) {
  manual_seed(6);
  nn::CausalSelfAttention attn(8, 2, {.dtype = DType::Float64});
  Generator g(14);
  Tensor x = randn({1, 6, 8}, DType::Float64, &g);
  Tensor x2 = ops::clone(x);
  ops::fill_(ops::narrow(x2, 1, 4, 2), -3.0);
  EXPECT_EQ(ops::narrow(attn(x2), 1, 0, 4).to_vector<double>(), ops::narrow(attn(x), 1, 0, 4).to_vector<double>());
}

TEST(CausalSelfAttention, GradientsMatchFiniteDifferences) {
  manual_seed(7);
  nn::CausalSelfAttention attn(4, 2, {.dtype = DType::Float64});
  Generator g(15);
  Tensor x = leaf({2, 3, 4}, g);
  Inputs inputs{x};
  for (const Tensor& p : attn->parameters()) inputs.push_back(p);
  EXPECT_TRUE(gradcheck([&](const Inputs& in) { return attn(in[0]); }, inputs));
}

TEST(CausalSelfAttention, DropoutOnlyWhileTraining) {
  manual_seed(8);
  nn::CausalSelfAttention attn(8, 2, {.dropout = 0.5});
  Tensor x = randn({2, 5, 8});
  attn->eval();
  const std::vector<float> a = attn(x).to_vector<float>();
  EXPECT_EQ(a, attn(x).to_vector<float>());
  attn->train();
  EXPECT_NE(a, attn(x).to_vector<float>());
}

TEST(CausalSelfAttention, BadConfigurationsAreErrors) {
  braid::test::expect_error([] { nn::CausalSelfAttention(10, 4); }, {"CausalSelfAttention", "embed_dim 10", "4"});
  braid::test::expect_error([] { nn::CausalSelfAttention(0, 4); }, {"CausalSelfAttention", "positive"});
  braid::test::expect_error([] { nn::CausalSelfAttention(8, 2, {.dropout = -0.1}); }, {"dropout"});
  nn::CausalSelfAttention attn(8, 2);
  braid::test::expect_error([&] { attn(zeros({2, 8})); }, {"CausalSelfAttention", "[batch, sequence, 8]", "[2, 8]"});
  braid::test::expect_error([&] { attn(zeros({2, 3, 6})); }, {"[2, 3, 6]"});
}
