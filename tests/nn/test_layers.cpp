// Modules and layers: initialisation, parameter naming, state dicts, train/eval, and each layer's forward
// against its definition; shape errors name the layer and the shapes.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "../test_util.h"
#include "braid/braid.h"

using namespace braid;
using braid::test::error_of;
using braid::test::expect_error;
using braid::test::names_of;
namespace F = braid::nn::functional;

namespace {

struct Block : nn::Module {
  Block() : Module("Block") {}
  nn::Linear fc = register_module("fc", nn::Linear(3, 3));
  Tensor forward(const Tensor& x) { return fc(x); }
};

struct Net : nn::Module {
  Net() : Module("Net") {}
  nn::Linear fc = register_module("fc", nn::Linear(2, 3));
  std::shared_ptr<Block> block = register_module("block", std::make_shared<Block>());
  nn::Dropout drop = register_module("drop", nn::Dropout(0.5));
  nn::LayerNorm norm = register_module("norm", nn::LayerNorm(3));
  Tensor steps = register_buffer("steps", zeros({1}));
  Tensor forward(const Tensor& x) { return norm(drop(block->forward(relu(fc(x))))); }
};

}  // namespace

// ---- Linear ----

TEST(Linear, InitialisationBoundsAndShapes) {
  manual_seed(1);
  for (auto [in, out] : std::vector<std::pair<int64_t, int64_t>>{{100, 50}, {3, 7}, {784, 10}}) {
    nn::Linear fc(in, out);
    EXPECT_EQ(fc->in_features, in);
    EXPECT_EQ(fc->out_features, out);
    EXPECT_EQ(fc->weight.shape(), (Shape{out, in}));
    EXPECT_EQ(fc->bias.shape(), (Shape{out}));
    EXPECT_TRUE(fc->weight.requires_grad());
    EXPECT_TRUE(fc->bias.requires_grad());
    double bound = 1.0 / std::sqrt(double(in));
    std::vector<double> w = fc->weight.to_vector<double>(), b = fc->bias.to_vector<double>();
    double max_abs = 0, mean = 0, sq = 0;
    for (double v : w) {
      EXPECT_LE(std::abs(v), bound);
      max_abs = std::max(max_abs, std::abs(v));
      mean += v / double(w.size());
      sq += v * v / double(w.size());
    }
    for (double v : b) EXPECT_LE(std::abs(v), bound);
    if (w.size() >= 1000) {  // uniform(-bound, bound): fills the range, mean 0, std bound / sqrt(3)
      EXPECT_GT(max_abs, 0.95 * bound);
      EXPECT_NEAR(mean, 0, 0.05 * bound);
      EXPECT_NEAR(std::sqrt(sq), bound / std::sqrt(3.0), 0.05 * bound);
    }
  }
  // The default generator makes initialisation reproducible.
  manual_seed(9);
  nn::Linear r1(5, 4);
  manual_seed(9);
  nn::Linear r2(5, 4);
  EXPECT_EQ(r1->weight.to_vector<float>(), r2->weight.to_vector<float>());
  EXPECT_EQ(r1->bias.to_vector<float>(), r2->bias.to_vector<float>());
  nn::Linear r3(5, 4);
  EXPECT_NE(r1->weight.to_vector<float>(), r3->weight.to_vector<float>());

  nn::Linear nobias(4, 2, false);
  EXPECT_FALSE(nobias->bias.defined());
  EXPECT_EQ(nobias->parameters().size(), 1u);
  EXPECT_EQ(names_of(nobias->named_parameters()), (std::vector<std::string>{"weight"}));
  nn::Linear f64(4, 2, true, DType::Float64);
  EXPECT_EQ(f64->weight.dtype(), DType::Float64);
  EXPECT_EQ(f64->bias.dtype(), DType::Float64);
  EXPECT_THROW(nn::Linear(0, 3), Error);
}

TEST(Linear, ForwardIsXWTransposePlusBias) {
  nn::Linear fc(3, 2, true, DType::Float64);
  {
    NoGradGuard g;
    ops::copy_(fc->weight, from_vector(std::vector<double>{1, 2, 3, -1, 0, 1}, {2, 3}));
    ops::copy_(fc->bias, from_vector(std::vector<double>{0.5, -0.5}));
  }
  Tensor x = from_vector(std::vector<double>{1, 1, 1, 2, 0, -1}, {2, 3});
  EXPECT_EQ(fc(x).to_vector<double>(), (std::vector<double>{6.5, -0.5, -0.5, -3.5}));
  Tensor x3 = reshape(cat({x, x}, 0), {2, 2, 3});
  Tensor y3 = fc(x3);
  EXPECT_EQ(y3.shape(), (Shape{2, 2, 2}));
  EXPECT_EQ(y3.to_vector<double>(), (std::vector<double>{6.5, -0.5, -0.5, -3.5, 6.5, -0.5, -0.5, -3.5}));
}

// ---- naming and state ----

TEST(Module, ParameterNames) {
  nn::Sequential seq(nn::Linear(2, 3), nn::ReLU(), nn::Linear(3, 1));
  EXPECT_EQ(seq->size(), 3u);
  EXPECT_EQ(names_of(seq->named_parameters()), (std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"}));

  Net net;
  EXPECT_EQ(names_of(net.named_parameters()), (std::vector<std::string>{"fc.weight", "fc.bias", "block.fc.weight",
                                                                        "block.fc.bias", "norm.weight", "norm.bias"}));
  EXPECT_TRUE(net.named_parameters(/*recurse=*/false).empty());
  EXPECT_EQ(names_of(net.named_buffers()), (std::vector<std::string>{"steps"}));
  EXPECT_EQ(net.parameters().size(), 6u);
  EXPECT_TRUE(net.parameters()[2].same(net.block->fc->weight));
  auto children = net.named_children();
  ASSERT_EQ(children.size(), 4u);
  EXPECT_EQ(children[1].first, "block");
  EXPECT_EQ(children[1].second->type_name(), "Block");

  // Nested Sequentials.
  nn::Sequential outer(nn::Linear(2, 2), nn::Sequential(nn::Tanh(), nn::Linear(2, 4)));
  EXPECT_EQ(names_of(outer->named_parameters()),
            (std::vector<std::string>{"0.weight", "0.bias", "1.1.weight", "1.1.bias"}));
}

TEST(Module, RegistrationErrorsAndSharedParameters) {
  nn::Module m("Custom");
  m.register_parameter("w", zeros({2}));
  std::string msg = error_of([&] { m.register_parameter("w", zeros({2})); });
  EXPECT_CONTAINS(msg, "Custom");
  EXPECT_CONTAINS(msg, "'w'");
  EXPECT_THROW(m.register_parameter("a.b", zeros({2})), Error);
  EXPECT_THROW(m.register_parameter("", zeros({2})), Error);
  EXPECT_THROW(m.register_buffer("w", zeros({2})), Error);
  Tensor x = zeros({2}).requires_grad_();
  EXPECT_THROW(m.register_parameter("nonleaf", x * 2.0), Error);
  Tensor frozen = m.register_parameter("frozen", zeros({2}), /*requires_grad=*/false);
  EXPECT_FALSE(frozen.requires_grad());

  // A tensor registered twice (tied weights) is listed once.
  nn::Module tied("Tied");
  Tensor w = ones({3});
  tied.register_parameter("a", w);
  tied.register_parameter("b", w);
  EXPECT_EQ(tied.parameters().size(), 1u);
}

TEST(Module, StateDictRoundTrip) {
  manual_seed(10);
  Net a;
  manual_seed(11);
  Net b;
  ASSERT_FALSE(ops::allclose(a.fc->weight, b.fc->weight));
  nn::StateDict sd = a.state_dict();
  std::set<std::string> keys;
  for (auto& [k, _] : sd) keys.insert(k);
  EXPECT_EQ(keys, (std::set<std::string>{"fc.weight", "fc.bias", "block.fc.weight", "block.fc.bias", "norm.weight",
                                         "norm.bias", "steps"}));
  for (auto& [k, t] : sd) EXPECT_FALSE(t.requires_grad()) << k;

  Tensor b_weight_handle = b.fc->weight;
  ops::fill_(a.steps, 42);
  b.load_state_dict(a.state_dict());
  auto pa = a.named_parameters(), pb = b.named_parameters();
  for (size_t i = 0; i < pa.size(); ++i)
    EXPECT_EQ(pa[i].second.to_vector<float>(), pb[i].second.to_vector<float>()) << pa[i].first;
  EXPECT_EQ(b.steps.to_vector<float>(), (std::vector<float>{42}));
  // Values were copied into the existing tensors: handles held elsewhere (an optimizer) see them, and the two
  // models do not share memory afterwards.
  EXPECT_TRUE(b_weight_handle.same(b.fc->weight));
  EXPECT_EQ(b_weight_handle.to_vector<float>(), a.fc->weight.to_vector<float>());
  EXPECT_TRUE(b.fc->weight.requires_grad());
  ops::fill_(a.fc->weight, 0);
  EXPECT_NE(b.fc->weight.to_vector<float>(), a.fc->weight.to_vector<float>());
}

TEST(Module, LoadStateDictErrors) {
  manual_seed(12);
  Net a;
  nn::StateDict sd = a.state_dict();
  Net b;
  std::vector<float> before = b.fc->weight.to_vector<float>();

  nn::StateDict wrong_shape = sd;
  wrong_shape["block.fc.weight"] = zeros({3, 4});
  std::string msg = error_of([&] { b.load_state_dict(wrong_shape); });
  EXPECT_CONTAINS(msg, "block.fc.weight");
  EXPECT_CONTAINS(msg, "[3, 4]");
  EXPECT_CONTAINS(msg, "[3, 3]");
  EXPECT_EQ(b.fc->weight.to_vector<float>(), before) << "a failed load must leave the model untouched";

  nn::StateDict wrong_dtype = sd;
  wrong_dtype["fc.bias"] = zeros({3}, DType::Float64);
  msg = error_of([&] { b.load_state_dict(wrong_dtype); });
  EXPECT_CONTAINS(msg, "fc.bias");
  EXPECT_CONTAINS(msg, "float64");

  nn::StateDict missing = sd;
  missing.erase("norm.bias");
  msg = error_of([&] { b.load_state_dict(missing); });
  EXPECT_CONTAINS(msg, "missing");
  EXPECT_CONTAINS(msg, "norm.bias");
  EXPECT_NO_THROW(b.load_state_dict(missing, /*strict=*/false));
  EXPECT_EQ(b.fc->weight.to_vector<float>(), a.fc->weight.to_vector<float>());

  nn::StateDict extra = sd;
  extra["head.weight"] = zeros({1});
  msg = error_of([&] { b.load_state_dict(extra); });
  EXPECT_CONTAINS(msg, "unexpected");
  EXPECT_CONTAINS(msg, "head.weight");
  EXPECT_NO_THROW(b.load_state_dict(extra, false));
}

TEST(Module, ToDtypeConvertsInPlaceAndZeroGrad) {
  nn::Linear fc(3, 2);
  Tensor handle = fc->weight;
  std::vector<float> w32 = fc->weight.to_vector<float>();
  sum(fc(ones({1, 3}))).backward();
  ASSERT_TRUE(fc->weight.grad().defined());
  fc->zero_grad(/*set_to_none=*/false);
  for (float g : fc->weight.grad().to_vector<float>()) EXPECT_EQ(g, 0.0f);
  fc->zero_grad();
  EXPECT_FALSE(fc->weight.grad().defined());

  fc->to(DType::Float64);
  EXPECT_EQ(handle.dtype(), DType::Float64);  // the same tensor, converted
  EXPECT_EQ(fc->bias.dtype(), DType::Float64);
  std::vector<double> w64 = handle.to_vector<double>();
  for (size_t i = 0; i < w32.size(); ++i) EXPECT_EQ(w64[i], double(w32[i]));
  EXPECT_TRUE(handle.requires_grad());
  Tensor y = fc(ones({1, 3}, DType::Float64));
  EXPECT_EQ(y.dtype(), DType::Float64);
  EXPECT_THROW(fc->to(DType::Int64), Error);
}

// ---- train / eval and Dropout ----

TEST(Module, TrainEvalPropagates) {
  Net net;
  EXPECT_TRUE(net.is_training());
  EXPECT_TRUE(net.drop->is_training());
  net.eval();
  EXPECT_FALSE(net.is_training());
  EXPECT_FALSE(net.drop->is_training());
  EXPECT_FALSE(net.block->is_training());
  EXPECT_FALSE(net.block->fc->is_training());
  Tensor x = randn({4, 2});
  Tensor y1 = net.forward(x), y2 = net.forward(x);
  EXPECT_EQ(y1.to_vector<float>(), y2.to_vector<float>()) << "eval() must make dropout deterministic";
  net.train();
  EXPECT_TRUE(net.drop->is_training());
  EXPECT_TRUE(net.block->fc->is_training());

  nn::Sequential seq(nn::Linear(3, 3), nn::Dropout(0.9));
  seq->eval();
  for (auto& [name, child] : seq->named_children()) EXPECT_FALSE(child->is_training()) << name;
}

TEST(Dropout, IdentityInEval) {
  nn::Dropout drop(0.5);
  drop->eval();
  Tensor x = randn({10, 10});
  Tensor y = drop(x);
  EXPECT_EQ(y.to_vector<float>(), x.to_vector<float>());
  EXPECT_TRUE(F::dropout(x, 0.5, /*training=*/false).same(x));
  EXPECT_EQ(F::dropout(x, 0.0, true).to_vector<float>(), x.to_vector<float>());
}

TEST(Dropout, TrainingZeroesAboutPAndScalesTheRest) {
  manual_seed(21);
  for (double p : {0.1, 0.3, 0.5, 0.8}) {
    SCOPED_TRACE("p = " + std::to_string(p));
    nn::Dropout drop(p);
    Tensor x = uniform({200, 500}, 1.0, 2.0);
    std::vector<float> xv = x.to_vector<float>(), yv = drop(x).to_vector<float>();
    int64_t zeros_count = 0, badly_scaled = 0;
    for (size_t i = 0; i < yv.size(); ++i) {
      if (yv[i] == 0.0f)
        ++zeros_count;
      else if (std::abs(yv[i] - xv[i] / (1 - p)) > 1e-5)
        ++badly_scaled;
    }
    EXPECT_EQ(badly_scaled, 0) << "kept elements must be scaled by 1 / (1 - p)";
    double frac = double(zeros_count) / double(yv.size());
    EXPECT_NEAR(frac, p, 0.01);  // 100000 draws: std of the fraction is below 0.0016
  }
  // Different masks on different calls; the same mask from the same generator state.
  Tensor x = ones({1000});
  EXPECT_NE(F::dropout(x, 0.5, true).to_vector<float>(), F::dropout(x, 0.5, true).to_vector<float>());
  Generator g1(5), g2(5);
  EXPECT_EQ(F::dropout(x, 0.5, true, &g1).to_vector<float>(), F::dropout(x, 0.5, true, &g2).to_vector<float>());
  for (float v : F::dropout(x, 1.0, true).to_vector<float>()) EXPECT_EQ(v, 0.0f);
  EXPECT_THROW(nn::Dropout(1.5), Error);
  EXPECT_THROW(F::dropout(x, -0.1, true), Error);
}

// ---- LayerNorm ----

TEST(LayerNorm, RowsHaveZeroMeanUnitVariance) {
  Generator g(31);
  Tensor x = affine(randn({8, 16}, DType::Float64, &g), 3.0, 5.0);
  nn::LayerNorm ln(Shape{16}, 1e-5, true, DType::Float64);
  Tensor y = ln(x);
  EXPECT_EQ(y.shape(), x.shape());
  std::vector<double> yv = y.to_vector<double>(), xv = x.to_vector<double>();
  for (int r = 0; r < 8; ++r) {
    double m = 0, v = 0, xm = 0, xvar = 0;
    for (int c = 0; c < 16; ++c) m += yv[r * 16 + c] / 16, xm += xv[r * 16 + c] / 16;
    for (int c = 0; c < 16; ++c) {
      v += (yv[r * 16 + c] - m) * (yv[r * 16 + c] - m) / 16;
      xvar += (xv[r * 16 + c] - xm) * (xv[r * 16 + c] - xm) / 16;
    }
    EXPECT_NEAR(m, 0, 1e-12);
    EXPECT_NEAR(v, xvar / (xvar + 1e-5), 1e-12);  // biased variance with eps, as PyTorch
    EXPECT_NEAR(v, 1, 1e-4);
    for (int c = 0; c < 16; ++c) EXPECT_NEAR(yv[r * 16 + c], (xv[r * 16 + c] - xm) / std::sqrt(xvar + 1e-5), 1e-12);
  }
  // The affine parameters scale and shift each feature.
  {
    NoGradGuard ng;
    ops::fill_(ln->weight, 2);
    ops::fill_(ln->bias, -1);
  }
  std::vector<double> ya = ln(x).to_vector<double>();
  for (size_t i = 0; i < ya.size(); ++i) EXPECT_NEAR(ya[i], 2 * yv[i] - 1, 1e-12);

  // Over the last two dims.
  Tensor x3 = randn({2, 3, 4}, DType::Float64, &g);
  std::vector<double> y3 = F::layer_norm(x3, {3, 4}, Tensor(), Tensor()).to_vector<double>();
  for (int b = 0; b < 2; ++b) {
    double m = 0, v = 0;
    for (int i = 0; i < 12; ++i) m += y3[b * 12 + i] / 12;
    for (int i = 0; i < 12; ++i) v += (y3[b * 12 + i] - m) * (y3[b * 12 + i] - m) / 12;
    EXPECT_NEAR(m, 0, 1e-12);
    EXPECT_NEAR(v, 1, 1e-4);
  }
  nn::LayerNorm def(5);
  EXPECT_EQ(def->weight.to_vector<float>(), std::vector<float>(5, 1.0f));
  EXPECT_EQ(def->bias.to_vector<float>(), std::vector<float>(5, 0.0f));
}

// ---- Embedding ----

TEST(Embedding, PicksRows) {
  manual_seed(41);
  nn::Embedding emb(10, 4);
  EXPECT_EQ(emb->weight.shape(), (Shape{10, 4}));
  EXPECT_TRUE(emb->weight.requires_grad());
  Tensor idx = from_vector(std::vector<int64_t>{1, 3, 3, 9}, {2, 2});
  Tensor y = emb(idx);
  EXPECT_EQ(y.shape(), (Shape{2, 2, 4}));
  std::vector<float> w = emb->weight.to_vector<float>(), yv = y.to_vector<float>();
  const int64_t rows[4] = {1, 3, 3, 9};
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) EXPECT_EQ(yv[i * 4 + j], w[rows[i] * 4 + j]);
  Tensor one = emb(from_vector(std::vector<int64_t>{7}));
  EXPECT_EQ(one.shape(), (Shape{1, 4}));
  // N(0, 1) initialisation.
  nn::Embedding big(1000, 20);
  std::vector<float> bw = big->weight.to_vector<float>();
  double m = 0, s = 0;
  for (float v : bw) m += v / double(bw.size());
  for (float v : bw) s += (v - m) * (v - m) / double(bw.size());
  EXPECT_NEAR(m, 0, 0.02);
  EXPECT_NEAR(std::sqrt(s), 1, 0.02);

  std::string msg = error_of([&] { emb(from_vector(std::vector<int64_t>{10})); });
  EXPECT_CONTAINS(msg, "10");
  EXPECT_CONTAINS(msg, "out of range");
  msg = error_of([&] { emb(from_vector(std::vector<float>{1})); });
  EXPECT_CONTAINS(msg, "embedding");
  EXPECT_CONTAINS(msg, "int64");
}

// ---- Sequential ----

TEST(Sequential, EqualsManualComposition) {
  manual_seed(51);
  nn::Linear fc1(4, 6), fc2(6, 3);
  nn::Tanh act;
  nn::LayerNorm norm(3);
  nn::Sequential seq(fc1, act, fc2, norm);
  EXPECT_EQ(seq->size(), 4u);
  // The Sequential holds the same modules (not copies).
  EXPECT_TRUE(seq->parameters()[0].same(fc1->weight));
  Tensor x = randn({5, 4});
  EXPECT_EQ(seq(x).to_vector<float>(), norm(fc2(act(fc1(x)))).to_vector<float>());
  Tensor manual = norm(fc2(braid::tanh(linear(x, fc1->weight, fc1->bias))));
  EXPECT_EQ(seq(x).to_vector<float>(), manual.to_vector<float>());

  nn::Sequential grown;
  grown->push_back(fc1);
  grown->push_back(nn::GELU());
  EXPECT_EQ(grown->size(), 2u);
  EXPECT_EQ(grown(x).to_vector<float>(), gelu(fc1(x)).to_vector<float>());
  EXPECT_EQ(names_of(grown->named_parameters()), (std::vector<std::string>{"0.weight", "0.bias"}));

  // Gradients flow to every layer.
  sum(seq(x)).backward();
  for (auto& [name, p] : seq->named_parameters()) EXPECT_TRUE(p.grad().defined()) << name;
}

// ---- losses ----

TEST(Losses, ValuesMatchDefinitions) {
  Tensor x = from_vector(std::vector<double>{1, 2, 3, 4}, {2, 2});
  Tensor y = from_vector(std::vector<double>{0, 2, 5, 3}, {2, 2});
  EXPECT_DOUBLE_EQ(nn::mse_loss(x, y).item<double>(), (1 + 0 + 4 + 1) / 4.0);
  EXPECT_DOUBLE_EQ(nn::MSELoss(F::Reduction::Sum)(x, y).item<double>(), 6.0);
  EXPECT_EQ(F::mse_loss(x, y, F::Reduction::None).to_vector<double>(), (std::vector<double>{1, 0, 4, 1}));

  Tensor logits = from_vector(std::vector<double>{1, 2, 3, 1, 0, -1}, {2, 3});
  Tensor target = from_vector(std::vector<int64_t>{2, 0});
  double l0 = std::log(std::exp(1) + std::exp(2) + std::exp(3)) - 3;
  double l1 = std::log(std::exp(1) + std::exp(0) + std::exp(-1)) - 1;
  EXPECT_NEAR(nn::cross_entropy(logits, target).item<double>(), (l0 + l1) / 2, 1e-12);
  EXPECT_NEAR(nn::CrossEntropyLoss(F::Reduction::Sum)(logits, target).item<double>(), l0 + l1, 1e-12);
  std::vector<double> per = F::cross_entropy(logits, target, F::Reduction::None).to_vector<double>();
  EXPECT_NEAR(per[0], l0, 1e-12);
  EXPECT_NEAR(per[1], l1, 1e-12);
  EXPECT_NEAR(nn::nll_loss(log_softmax(logits, 1), target).item<double>(), (l0 + l1) / 2, 1e-12);
  EXPECT_DOUBLE_EQ(nn::NLLLoss()(logits, target).item<double>(), -(3 + 1) / 2.0);
}

// ---- shape errors ----

TEST(LayerErrors, ShapeErrorsNameTheLayerAndShapes) {
  nn::Linear fc(4, 3);
  std::string msg = error_of([&] { fc(zeros({2, 5})); });
  EXPECT_CONTAINS(msg, "linear");
  EXPECT_CONTAINS(msg, "[2, 5]");
  EXPECT_CONTAINS(msg, "4");
  msg = error_of([&] { fc(zeros({2, 4}, DType::Float64)); });
  EXPECT_CONTAINS(msg, "linear");
  EXPECT_CONTAINS(msg, "float64");

  nn::LayerNorm ln(4);
  msg = error_of([&] { ln(zeros({2, 5})); });
  EXPECT_CONTAINS(msg, "layer_norm");
  EXPECT_CONTAINS(msg, "[2, 5]");
  EXPECT_CONTAINS(msg, "[4]");

  // The affine parameters must match normalized_shape exactly, not broadcast to it.
  msg = error_of([] { nn::functional::layer_norm(zeros({3, 4}), {4}, ones({3, 4}), Tensor()); });
  EXPECT_CONTAINS(msg, "layer_norm");
  EXPECT_CONTAINS(msg, "weight");
  EXPECT_CONTAINS(msg, "[3, 4]");
  EXPECT_CONTAINS(msg, "[4]");
  msg = error_of([] { nn::functional::layer_norm(zeros({3, 4}), {4}, Tensor(), zeros({1})); });
  EXPECT_CONTAINS(msg, "bias");
  msg = error_of([] { nn::functional::layer_norm(zeros({3, 4}), {4}, ones({4}, DType::Float64), Tensor()); });
  EXPECT_CONTAINS(msg, "layer_norm");
  EXPECT_CONTAINS(msg, "float64");

  msg = error_of([] { nn::mse_loss(zeros({2, 3}), zeros({2, 3}, DType::Float64)); });
  EXPECT_CONTAINS(msg, "mse_loss");
  EXPECT_CONTAINS(msg, "float64");
  msg = error_of([] { nn::mse_loss(zeros({2, 3}), zeros({3, 2})); });
  EXPECT_CONTAINS(msg, "mse_loss");
  EXPECT_CONTAINS(msg, "[2, 3]");
  EXPECT_CONTAINS(msg, "[3, 2]");

  msg = error_of([] { nn::cross_entropy(zeros({4, 3}), from_vector(std::vector<int64_t>{0, 1})); });
  EXPECT_CONTAINS(msg, "cross_entropy");
  EXPECT_CONTAINS(msg, "[4, 3]");
  EXPECT_CONTAINS(msg, "[2]");
  msg = error_of([] { nn::cross_entropy(zeros({4}), from_vector(std::vector<int64_t>{0, 1, 0, 1})); });
  EXPECT_CONTAINS(msg, "cross_entropy");
  EXPECT_CONTAINS(msg, "[4]");
  msg = error_of([] { nn::cross_entropy(zeros({2, 3}), from_vector(std::vector<int64_t>{0, 3})); });
  EXPECT_CONTAINS(msg, "3");
  msg = error_of([] { nn::nll_loss(zeros({2, 3}), zeros({2})); });
  EXPECT_CONTAINS(msg, "nll_loss");
  EXPECT_CONTAINS(msg, "int64");

  nn::Sequential seq(nn::Linear(4, 8), nn::ReLU(), nn::Linear(6, 2));
  msg = error_of([&] { seq(zeros({3, 4})); });
  EXPECT_CONTAINS(msg, "linear");
  EXPECT_CONTAINS(msg, "[3, 8]");
  EXPECT_CONTAINS(msg, "6");
}
