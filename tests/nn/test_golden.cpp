// Golden tests: Braid against PyTorch. tests/golden/make_golden.py (run by hand with Debian's python3-torch)
// wrote tests/data/golden/*.safetensors with the inputs, initial weights, outputs, losses and gradients of a
// small MLP with every layer and loss, an embedding model, the parameters after SGD-momentum and AdamW steps,
// numerical edge cases (log-softmax of large logits, both GELU forms), scaled dot-product attention and a GPT
// block. Here the same models are built from Braid's layers, loaded with those weights (read by braid::nn::load,
// which so also proves Braid reads files written outside it), run, and compared element by element.
//
// The expected values were computed in float64 from the float32 inputs and rounded to float32, so what remains
// is Braid's own float32 rounding error. PyTorch's float32 run is within 6e-7 of the largest magnitude of each
// tensor (the script prints it), so the tolerances below leave an order of magnitude of room for a different
// summation order and nothing more: an element fails when |braid - golden| > rtol |golden| + atol max|golden|.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "braid/core/core.h"
#include "braid/nn/attention.h"
#include "braid/nn/checkpoint.h"
#include "braid/nn/functional.h"
#include "braid/nn/layers.h"
#include "braid/nn/module.h"
#include "braid/optim/adam.h"
#include "braid/optim/sgd.h"

namespace braid {
namespace {

namespace F = nn::functional;

struct Tolerance {
  double rtol;  // relative to each element
  double atol;  // relative to the tensor's largest magnitude
};
// One forward or backward pass.
constexpr Tolerance kPass{1e-5, 1e-5};
// Ten optimizer steps, each feeding the next.
constexpr Tolerance kTraining{1e-4, 1e-4};

std::string golden_path(const std::string& file) { return std::string(BRAID_TEST_DATA_DIR) + "/golden/" + file; }

const Tensor& get(const nn::StateDict& golden, const std::string& name) {
  auto it = golden.find(name);
  if (it == golden.end()) throw Error("golden file has no tensor '" + name + "'");
  return it->second;
}

// The tensors whose names start with `prefix`, with the prefix removed (a module's state dict).
nn::StateDict with_prefix(const nn::StateDict& golden, const std::string& prefix) {
  nn::StateDict out;
  for (const auto& [name, t] : golden)
    if (name.compare(0, prefix.size(), prefix) == 0) out[name.substr(prefix.size())] = t;
  return out;
}

// A fresh copy, so the golden tensors themselves are never changed by a test.
Tensor copy_of(const Tensor& t) { return clone(t).detach(); }

testing::AssertionResult matches_golden(const std::string& name, const Tensor& actual, const Tensor& expected,
                                        Tolerance tol) {
  if (!actual.defined()) return testing::AssertionFailure() << name << ": Braid's tensor is undefined";
  if (actual.shape() != expected.shape())
    return testing::AssertionFailure() << name << ": shape " << shape_str(actual.shape()) << ", golden "
                                       << shape_str(expected.shape());
  std::vector<double> a = actual.to_vector<double>(), e = expected.to_vector<double>();
  double scale = 0;
  for (double v : e) scale = std::max(scale, std::abs(v));
  double max_diff = 0, worst_ratio = 0;
  size_t worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    double diff = std::abs(a[i] - e[i]);
    max_diff = std::max(max_diff, diff);
    double allowed = tol.rtol * std::abs(e[i]) + tol.atol * scale;
    double ratio = !std::isfinite(a[i]) ? INFINITY : allowed > 0 ? diff / allowed : (diff > 0 ? INFINITY : 0);
    if (ratio > worst_ratio) worst_ratio = ratio, worst = i;
  }
  if (worst_ratio <= 1) return testing::AssertionSuccess();
  std::ostringstream msg;
  msg.precision(9);
  msg << name << " " << shape_str(expected.shape()) << ": max |diff| " << max_diff << " (max |golden| " << scale
      << "); worst element " << worst << ": braid " << a[worst] << ", golden " << e[worst] << ", allowed "
      << tol.rtol * std::abs(e[worst]) + tol.atol * scale << " (rtol " << tol.rtol << ", atol " << tol.atol
      << " x max |golden|)";
  return testing::AssertionFailure() << msg.str();
}

#define EXPECT_GOLDEN(name, actual, golden, tol) EXPECT_TRUE(matches_golden(name, actual, get(golden, name), tol))

// ---- the models, as make_golden.py builds them

struct Mlp {
  nn::Linear fc0{12, 16};
  nn::LayerNorm norm1{16};
  nn::GELU gelu2;
  nn::Linear fc3{16, 16};
  nn::ReLU relu4;
  nn::Linear fc5{16, 16};
  nn::Tanh tanh6;
  nn::Linear fc7{16, 16};
  nn::Sigmoid sigmoid8;
  nn::Dropout dropout9{0.3};
  nn::Linear fc10{16, 10};
  nn::Sequential model{fc0, norm1, gelu2, fc3, relu4, fc5, tanh6, fc7, sigmoid8, dropout9, fc10};

  // Loads the golden initial weights (strictly: every name must match Braid's) and switches Dropout off.
  Mlp(const nn::StateDict& golden, const std::string& param_prefix) {
    model->load_state_dict(with_prefix(golden, param_prefix));
    model->eval();
  }
  // Each layer's output, in order; the last is the logits.
  std::vector<Tensor> activations(const Tensor& x) {
    std::vector<Tensor> out;
    out.push_back(fc0(x));
    out.push_back(norm1(out.back()));
    out.push_back(gelu2(out.back()));
    out.push_back(fc3(out.back()));
    out.push_back(relu4(out.back()));
    out.push_back(fc5(out.back()));
    out.push_back(tanh6(out.back()));
    out.push_back(fc7(out.back()));
    out.push_back(sigmoid8(out.back()));
    out.push_back(dropout9(out.back()));
    out.push_back(fc10(out.back()));
    return out;
  }
};

struct EmbeddingModel : nn::Module {
  nn::Embedding emb = register_module("emb", nn::Embedding(20, 6));
  nn::Linear fc = register_module("fc", nn::Linear(6, 3));
  Tensor pooled(const Tensor& ids) { return mean(emb(ids), {1}); }
  Tensor forward(const Tensor& ids) { return fc(pooled(ids)); }
};

// ---- mlp.safetensors

class GoldenMlp : public testing::Test {
 protected:
  static void SetUpTestSuite() { golden_ = new nn::StateDict(nn::load(golden_path("mlp.safetensors"))); }
  static void TearDownTestSuite() {
    delete golden_;
    golden_ = nullptr;
  }
  const nn::StateDict& golden() const { return *golden_; }

  Tensor loss(const std::string& which, const Tensor& logits) const {
    const Tensor& target = get(golden(), "mlp.target.class");
    if (which == "ce") return F::cross_entropy(logits, target);
    if (which == "nll") return F::nll_loss(log_softmax(logits, 1), target);
    return F::mse_loss(logits, get(golden(), "mlp.target.mse"));
  }

  static nn::StateDict* golden_;
};
nn::StateDict* GoldenMlp::golden_ = nullptr;

TEST_F(GoldenMlp, FileHoldsWhatTheScriptWrote) {
  EXPECT_EQ(get(golden(), "mlp.input").dtype(), DType::Float32);
  EXPECT_EQ(get(golden(), "mlp.input").shape(), (Shape{8, 12}));
  EXPECT_EQ(get(golden(), "mlp.target.class").dtype(), DType::Int64);
  EXPECT_EQ(get(golden(), "mlp.loss.ce").shape(), Shape{});  // 0-d, as PyTorch saves a scalar
  EXPECT_EQ(nn::load_metadata(golden_path("mlp.safetensors")).at("case"), "mlp");
}

TEST_F(GoldenMlp, LoadedWeightsAreTheGoldenOnes) {
  Mlp mlp(golden(), "mlp.param.");
  auto params = mlp.model->named_parameters();
  EXPECT_EQ(params.size(), with_prefix(golden(), "mlp.param.").size());
  for (const auto& [name, p] : params) EXPECT_GOLDEN("mlp.param." + name, p, golden(), (Tolerance{0, 0}));
}

TEST_F(GoldenMlp, ForwardMatchesPyTorch) {
  Mlp mlp(golden(), "mlp.param.");
  Tensor x = copy_of(get(golden(), "mlp.input"));
  NoGradGuard no_grad;
  std::vector<Tensor> acts = mlp.activations(x);
  for (size_t i = 0; i < acts.size(); ++i)
    EXPECT_GOLDEN("mlp.activation." + std::to_string(i), acts[i], golden(), kPass);
  Tensor logits = mlp.model(x);
  EXPECT_GOLDEN("mlp.logits", logits, golden(), kPass);
  EXPECT_GOLDEN("mlp.log_softmax", log_softmax(logits, 1), golden(), kPass);
  for (const char* which : {"ce", "nll", "mse"})
    EXPECT_GOLDEN(std::string("mlp.loss.") + which, loss(which, logits), golden(), kPass);
}

TEST_F(GoldenMlp, EveryGradientMatchesPyTorch) {
  for (const std::string which : {"ce", "nll", "mse"}) {
    SCOPED_TRACE("loss " + which);
    Mlp mlp(golden(), "mlp.param.");
    Tensor x = copy_of(get(golden(), "mlp.input"));
    x.requires_grad_();
    Tensor l = loss(which, mlp.model(x));
    EXPECT_GOLDEN("mlp.loss." + which, l, golden(), kPass);
    l.backward();
    const std::string prefix = "mlp.grad." + which + ".";
    std::set<std::string> compared;
    for (const auto& [name, p] : mlp.model->named_parameters()) {
      EXPECT_GOLDEN(prefix + name, p.grad(), golden(), kPass);
      compared.insert(name);
    }
    EXPECT_GOLDEN(prefix + "input", x.grad(), golden(), kPass);
    compared.insert("input");
    for (const auto& [name, _] : with_prefix(golden(), prefix))
      EXPECT_TRUE(compared.count(name)) << "golden gradient " << prefix << name << " has no Braid counterpart";
  }
}

// ---- embedding.safetensors

TEST(GoldenEmbedding, ForwardAndGradientsMatchPyTorch) {
  nn::StateDict golden = nn::load(golden_path("embedding.safetensors"));
  EmbeddingModel model;
  model.load_state_dict(with_prefix(golden, "embedding.param."));
  const Tensor& ids = get(golden, "embedding.ids");
  ASSERT_EQ(ids.dtype(), DType::Int64);
  {
    NoGradGuard no_grad;
    EXPECT_GOLDEN("embedding.pooled", model.pooled(ids), golden, kPass);
  }
  Tensor logits = model.forward(ids);
  EXPECT_GOLDEN("embedding.logits", logits, golden, kPass);
  Tensor l = F::cross_entropy(logits, get(golden, "embedding.target"));
  EXPECT_GOLDEN("embedding.loss", l, golden, kPass);
  l.backward();
  auto params = model.named_parameters();
  EXPECT_EQ(params.size(), with_prefix(golden, "embedding.grad.").size());
  // The table's gradient sums the repeated ids' rows and is zero for ids the batch never used.
  for (const auto& [name, p] : params) EXPECT_GOLDEN("embedding.grad." + name, p.grad(), golden, kPass);
}

// ---- numerics.safetensors

class GoldenNumerics : public testing::Test {
 protected:
  static void SetUpTestSuite() { golden_ = new nn::StateDict(nn::load(golden_path("numerics.safetensors"))); }
  static void TearDownTestSuite() {
    delete golden_;
    golden_ = nullptr;
  }
  const nn::StateDict& golden() const { return *golden_; }
  static nn::StateDict* golden_;
};
nn::StateDict* GoldenNumerics::golden_ = nullptr;

// Logits in the hundreds, where the likeliest classes have log-probabilities of -1e-5 to -1e-4: each element is
// held to its own relative error (no allowance from the tensor's largest magnitude, which is 100). PyTorch's own
// float32 kernel, summing in float32, is 1% off on the smallest of them; computing max + log(sum) in float32 first
// (Braid before issue 8) lost them entirely.
TEST_F(GoldenNumerics, LargeLogitsLogSoftmaxAndCrossEntropyMatchPyTorch) {
  Tensor x = copy_of(get(golden(), "large_logits.input"));
  const Tensor& target = get(golden(), "large_logits.target");
  EXPECT_GOLDEN("large_logits.log_softmax", log_softmax(x, 1), golden(), (Tolerance{1e-5, 0}));
  x.requires_grad_();
  Tensor l = F::cross_entropy(x, target);
  EXPECT_GOLDEN("large_logits.loss.ce", l, golden(), kPass);
  l.backward();
  EXPECT_GOLDEN("large_logits.grad.ce", x.grad(), golden(), kPass);
}

// Tighter than kPass: the two forms differ by up to 5e-4 here, and kPass would allow a tenth of that.
TEST_F(GoldenNumerics, GeluExactAndTanhWithGradientsMatchPyTorch) {
  constexpr Tolerance kElementwise{1e-5, 1e-6};
  for (const std::string approximate : {"none", "tanh"}) {
    SCOPED_TRACE("approximate " + approximate);
    Tensor x = copy_of(get(golden(), "gelu.input"));
    x.requires_grad_();
    nn::GELU layer({.approximate = approximate});
    Tensor y = layer(x);
    EXPECT_GOLDEN("gelu." + approximate, y, golden(), kElementwise);
    y.backward(get(golden(), "gelu.grad_output"));
    EXPECT_GOLDEN("gelu.grad." + approximate, x.grad(), golden(), kElementwise);
    EXPECT_GOLDEN("gelu." + approximate, gelu(copy_of(get(golden(), "gelu.input")), approximate), golden(), kElementwise);
  }
}

// ---- transformer.safetensors: scaled dot-product attention (causal, and non-causal with more keys than queries
// and an explicit scale) and a pre-LayerNorm GPT block, PyTorch's being nanoGPT's written-out attention

class GoldenTransformer : public testing::Test {
 protected:
  static void SetUpTestSuite() { golden_ = new nn::StateDict(nn::load(golden_path("transformer.safetensors"))); }
  static void TearDownTestSuite() {
    delete golden_;
    golden_ = nullptr;
  }
  const nn::StateDict& golden() const { return *golden_; }
  static nn::StateDict* golden_;
};
nn::StateDict* GoldenTransformer::golden_ = nullptr;

TEST_F(GoldenTransformer, AttentionForwardAndBackwardMatchPyTorch) {
  struct Case {
    std::string name;
    bool causal;
    std::optional<double> scale;
  };
  for (const Case& c : {Case{"causal", true, std::nullopt}, Case{"full", false, 0.3}}) {
    SCOPED_TRACE(c.name);
    const std::string p = "attention." + c.name + ".";
    Tensor q = copy_of(get(golden(), p + "query")), k = copy_of(get(golden(), p + "key"));
    Tensor v = copy_of(get(golden(), p + "value"));
    for (Tensor* t : {&q, &k, &v}) t->requires_grad_();
    Tensor y = F::scaled_dot_product_attention(q, k, v, c.causal, 0.0, c.scale);
    EXPECT_GOLDEN(p + "output", y, golden(), kPass);
    y.backward(get(golden(), p + "grad_output"));
    EXPECT_GOLDEN(p + "grad.query", q.grad(), golden(), kPass);
    EXPECT_GOLDEN(p + "grad.key", k.grad(), golden(), kPass);
    EXPECT_GOLDEN(p + "grad.value", v.grad(), golden(), kPass);
  }
}

struct GptBlock : nn::Module {
  nn::LayerNorm ln_1 = register_module("ln_1", nn::LayerNorm(16));
  nn::CausalSelfAttention attn = register_module("attn", nn::CausalSelfAttention(16, 4));
  nn::LayerNorm ln_2 = register_module("ln_2", nn::LayerNorm(16));
  nn::Sequential mlp = register_module(
      "mlp", nn::Sequential(nn::Linear(16, 64), nn::GELU({.approximate = "tanh"}), nn::Linear(64, 16)));
  Tensor forward(const Tensor& x) {
    Tensor h = x + attn(ln_1(x));
    return h + mlp(ln_2(h));
  }
};

TEST_F(GoldenTransformer, GptBlockOutputAndEveryGradientMatchPyTorch) {
  GptBlock block;
  block.load_state_dict(with_prefix(golden(), "block.param."));
  Tensor x = copy_of(get(golden(), "block.input"));
  x.requires_grad_();
  Tensor y = block.forward(x);
  EXPECT_GOLDEN("block.output", y, golden(), kPass);
  y.backward(get(golden(), "block.grad_output"));
  auto params = block.named_parameters();
  EXPECT_EQ(params.size(), with_prefix(golden(), "block.param.").size());
  for (const auto& [name, p] : params) EXPECT_GOLDEN("block.grad." + name, p.grad(), golden(), kPass);
  EXPECT_GOLDEN("block.grad.input", x.grad(), golden(), kPass);
}

// ---- optim.safetensors

class GoldenOptim : public testing::Test {
 protected:
  static void SetUpTestSuite() { golden_ = new nn::StateDict(nn::load(golden_path("optim.safetensors"))); }
  static void TearDownTestSuite() {
    delete golden_;
    golden_ = nullptr;
  }
  const nn::StateDict& golden() const { return *golden_; }

  // Ten steps of cross-entropy on the fixed batch, comparing the loss before each step and the parameters after
  // the first and the last.
  template <class Optimizer, class Options>
  void train_and_compare(const std::string& prefix, Options options) {
    Mlp mlp(golden(), "optim.param.");
    Optimizer optimizer(mlp.model->parameters(), options);
    const Tensor& x = get(golden(), "optim.input");
    const Tensor& target = get(golden(), "optim.target");
    std::vector<float> losses;
    const int steps = int(get(golden(), prefix + ".losses").numel());
    ASSERT_EQ(steps, 10);
    for (int step = 1; step <= steps; ++step) {
      optimizer.zero_grad();
      Tensor l = F::cross_entropy(mlp.model(x), target);
      l.backward();
      optimizer.step();
      losses.push_back(l.item<float>());
      if (step == 1) {
        for (const auto& [name, p] : mlp.model->named_parameters())
          EXPECT_GOLDEN(prefix + ".step1.param." + name, p, golden(), kPass);
      }
    }
    EXPECT_GOLDEN(prefix + ".losses", from_vector(losses), golden(), kTraining);
    auto params = mlp.model->named_parameters();
    EXPECT_EQ(params.size(), with_prefix(golden(), prefix + ".param.").size());
    for (const auto& [name, p] : params) EXPECT_GOLDEN(prefix + ".param." + name, p, golden(), kTraining);
  }

  static nn::StateDict* golden_;
};
nn::StateDict* GoldenOptim::golden_ = nullptr;

TEST_F(GoldenOptim, SGDMomentumTenStepsMatchPyTorch) {
  train_and_compare<optim::SGD>("optim.sgd", optim::SGDOptions{.lr = 0.1, .momentum = 0.9});
}

TEST_F(GoldenOptim, AdamWTenStepsMatchPyTorch) {
  train_and_compare<optim::AdamW>("optim.adamw", optim::AdamWOptions{.lr = 1e-2, .weight_decay = 0.01});
}

}  // namespace
}  // namespace braid
