// Parameter groups in the optimizers (as torch.optim's param_groups): each group steps exactly as an optimizer of
// its own with the group's options would; the state_dict holds one entry per group; bad groups are errors naming
// the group and the option; weight_decay_groups splits a model GPT-style.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "../test_util.h"
#include "braid/braid.h"

using namespace braid;
using braid::test::error_of;
using braid::test::expect_error;

namespace {

const std::vector<double> kA = {1.0, -2.0, 3.0, 0.5};
const std::vector<double> kB = {0.25, -0.75, 1.5};
const std::vector<std::vector<double>> kGradsA = {
    {0.5, -1.0, 2.0, 0.1}, {-0.3, 0.7, 1.1, -0.25}, {0.2, 0.2, -0.9, 0.4}};
const std::vector<std::vector<double>> kGradsB = {{-0.4, 0.3, 0.9}, {0.6, -0.2, 0.05}, {0.1, 1.2, -0.7}};

Tensor leaf(const std::vector<double>& v, const Shape& shape) { return from_vector(v, shape).requires_grad_(true); }

// Two parameters of different shapes with the same values and gradients in every copy.
struct Pair {
  Tensor a = leaf(kA, {2, 2});
  Tensor b = leaf(kB, {3});
  void grads(size_t t) const {
    a.set_grad(from_vector(kGradsA[t], {2, 2}));
    b.set_grad(from_vector(kGradsB[t], {3}));
  }
};

std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

// Every group's options and every parameter's state as plain numbers.
std::map<std::string, std::vector<double>> all_values(const optim::Optimizer& opt) {
  std::map<std::string, std::vector<double>> out;
  optim::OptimizerState s = opt.state_dict();
  for (size_t g = 0; g < s.param_groups.size(); ++g) {
    for (const auto& [k, v] : s.param_groups[g].options) out["group" + std::to_string(g) + "." + k] = {v};
    out["group" + std::to_string(g) + ".params"] =
        std::vector<double>(s.param_groups[g].params.begin(), s.param_groups[g].params.end());
  }
  for (const auto& [i, state] : s.state)
    for (const auto& [k, t] : state) out[std::to_string(i) + "." + k] = t.to_vector<double>();
  return out;
}

// Steps `grouped` (groups {a}, {b}) and two optimizers of their own over copies three times on the same gradients:
// every parameter must be bit-for-bit the same after each step.
void expect_groups_step_as_separate_optimizers(
    const std::function<std::unique_ptr<optim::Optimizer>(const Pair&)>& grouped,
    const std::function<std::unique_ptr<optim::Optimizer>(const Tensor&)>& alone_a,
    const std::function<std::unique_ptr<optim::Optimizer>(const Tensor&)>& alone_b) {
  Pair together, separate;
  auto opt = grouped(together);
  auto opt_a = alone_a(separate.a);
  auto opt_b = alone_b(separate.b);
  for (size_t t = 0; t < kGradsA.size(); ++t) {
    together.grads(t);
    separate.grads(t);
    opt->step();
    opt_a->step();
    opt_b->step();
    EXPECT_EQ(values(together.a), values(separate.a)) << "step " << t;
    EXPECT_EQ(values(together.b), values(separate.b)) << "step " << t;
  }
  EXPECT_NE(values(together.a), kA);
  EXPECT_NE(values(together.b), kB);
}

}  // namespace

// ---- stepping ----

TEST(ParamGroups, SgdPlainStepUsesEachGroupsLearningRateByHand) {
  Pair p;
  optim::SGD opt(std::vector<optim::ParamGroup>{{{p.a}, {}}, {{p.b}, {{"lr", 0.5}}}}, {.lr = 0.1});
  p.grads(0);
  opt.step();
  std::vector<double> want_a, want_b;
  for (size_t i = 0; i < kA.size(); ++i) want_a.push_back(kA[i] - 0.1 * kGradsA[0][i]);
  for (size_t i = 0; i < kB.size(); ++i) want_b.push_back(kB[i] - 0.5 * kGradsB[0][i]);
  EXPECT_EQ(values(p.a), want_a);
  EXPECT_EQ(values(p.b), want_b);
}

TEST(ParamGroups, SgdGroupsStepAsSeparateOptimizers) {
  const optim::SGDOptions defaults{.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01};
  expect_groups_step_as_separate_optimizers(
      [&](const Pair& p) {
        return std::make_unique<optim::SGD>(
            std::vector<optim::ParamGroup>{
                {{p.a}, {{"nesterov", 1}}},
                {{p.b}, {{"lr", 0.03}, {"momentum", 0.5}, {"dampening", 0.1}, {"weight_decay", 0}}}},
            defaults);
      },
      [&](const Tensor& a) {
        return std::make_unique<optim::SGD>(
            std::vector<Tensor>{a},
            optim::SGDOptions{.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01, .nesterov = true});
      },
      [&](const Tensor& b) {
        return std::make_unique<optim::SGD>(std::vector<Tensor>{b},
                                            optim::SGDOptions{.lr = 0.03, .momentum = 0.5, .dampening = 0.1});
      });
}

TEST(ParamGroups, AdamGroupsStepAsSeparateOptimizers) {
  expect_groups_step_as_separate_optimizers(
      [&](const Pair& p) {
        return std::make_unique<optim::Adam>(
            std::vector<optim::ParamGroup>{
                {{p.a}, {}},
                {{p.b}, {{"lr", 0.002}, {"beta1", 0.5}, {"beta2", 0.9}, {"eps", 1e-6}, {"weight_decay", 0}}}},
            optim::AdamOptions{.lr = 0.01, .weight_decay = 0.1});
      },
      [&](const Tensor& a) {
        return std::make_unique<optim::Adam>(std::vector<Tensor>{a},
                                             optim::AdamOptions{.lr = 0.01, .weight_decay = 0.1});
      },
      [&](const Tensor& b) {
        return std::make_unique<optim::Adam>(std::vector<Tensor>{b},
                                             optim::AdamOptions{.lr = 0.002, .beta1 = 0.5, .beta2 = 0.9, .eps = 1e-6});
      });
}

TEST(ParamGroups, AdamWGroupsStepAsSeparateOptimizers) {
  expect_groups_step_as_separate_optimizers(
      [&](const Pair& p) {
        return std::make_unique<optim::AdamW>(
            std::vector<optim::ParamGroup>{{{p.a}, {{"lr", 0.05}}}, {{p.b}, {{"weight_decay", 0}, {"beta2", 0.95}}}},
            optim::AdamWOptions{.lr = 0.01, .weight_decay = 0.1});
      },
      [&](const Tensor& a) {
        return std::make_unique<optim::AdamW>(std::vector<Tensor>{a},
                                              optim::AdamWOptions{.lr = 0.05, .weight_decay = 0.1});
      },
      [&](const Tensor& b) {
        return std::make_unique<optim::AdamW>(std::vector<Tensor>{b},
                                              optim::AdamWOptions{.lr = 0.01, .beta2 = 0.95, .weight_decay = 0});
      });
}

// AdamW's first step, by hand: m_hat = g, v_hat = g^2, so p <- p * (1 - lr * wd) - lr * g / (|g| + eps); with a
// zero gradient only the decay moves p.
TEST(ParamGroups, AdamWGroupWithoutWeightDecayIsFreeOfDecay) {
  const double lr = 0.01, wd = 0.1, eps = 1e-8;
  for (bool zero_grad : {false, true}) {
    SCOPED_TRACE(zero_grad ? "zero gradient" : "gradient");
    Pair p;
    optim::AdamW opt(std::vector<optim::ParamGroup>{{{p.a}, {}}, {{p.b}, {{"weight_decay", 0}}}},
                     {.lr = lr, .weight_decay = wd});
    p.grads(0);
    if (zero_grad) {
      p.a.set_grad(zeros({2, 2}, DType::Float64));
      p.b.set_grad(zeros({3}, DType::Float64));
    }
    opt.step();
    auto moved = [&](double g) { return g == 0 ? 0.0 : lr * g / (std::fabs(g) + eps); };
    for (size_t i = 0; i < kA.size(); ++i) {
      double g = zero_grad ? 0 : kGradsA[0][i];
      EXPECT_NEAR(values(p.a)[i], kA[i] * (1 - lr * wd) - moved(g), 1e-15) << "decaying, element " << i;
    }
    for (size_t i = 0; i < kB.size(); ++i) {
      double g = zero_grad ? 0 : kGradsB[0][i];
      EXPECT_NEAR(values(p.b)[i], kB[i] - moved(g), 1e-15) << "not decaying, element " << i;
    }
    if (zero_grad) {
      EXPECT_EQ(values(p.b), kB) << "no decay at all";
    }
  }
}

// ---- the groups as the optimizer shows them ----

TEST(ParamGroups, ParamGroupsHoldFullOptionsAndLearningRatesArePerGroup) {
  Pair p;
  Tensor c = leaf({1, 2}, {2});
  optim::SGD opt(std::vector<optim::ParamGroup>{{{p.a, p.b}, {{"momentum", 0.5}}}, {{c}, {{"lr", 0.3}}}},
                 {.lr = 0.1, .weight_decay = 0.01});
  ASSERT_EQ(opt.param_groups().size(), 2u);
  using Options = std::map<std::string, double>;
  EXPECT_EQ(opt.param_groups()[0].options,
            (Options{{"lr", 0.1}, {"momentum", 0.5}, {"dampening", 0}, {"weight_decay", 0.01}, {"nesterov", 0}}));
  EXPECT_EQ(opt.param_groups()[1].options,
            (Options{{"lr", 0.3}, {"momentum", 0}, {"dampening", 0}, {"weight_decay", 0.01}, {"nesterov", 0}}));
  ASSERT_EQ(opt.param_groups()[0].params.size(), 2u);
  EXPECT_TRUE(opt.param_groups()[0].params[1].same(p.b));
  ASSERT_EQ(opt.params().size(), 3u);
  EXPECT_TRUE(opt.params()[0].same(p.a));
  EXPECT_TRUE(opt.params()[2].same(c));

  EXPECT_EQ(opt.lr(), 0.1);
  EXPECT_EQ(opt.lr(1), 0.3);
  opt.set_lr(1, 0.7);
  EXPECT_EQ(opt.lr(), 0.1);
  EXPECT_EQ(opt.lr(1), 0.7);
  opt.set_lr(0.2);
  EXPECT_EQ(opt.lr(0), 0.2);
  EXPECT_EQ(opt.lr(1), 0.2);
  expect_error([&] { opt.set_lr(2, 0.1); }, {"SGD", "parameter group 2", "2 groups"});
  expect_error([&] { opt.set_lr(1, -1); }, {"parameter group 1", "learning rate", "-1"});
  expect_error([&] { (void)opt.lr(5); }, {"parameter group 5"});
  EXPECT_EQ(opt.lr(1), 0.2);

  // A flat list is one group with the constructor's options.
  optim::Adam flat(std::vector<Tensor>{p.a, p.b}, {.lr = 0.2});
  ASSERT_EQ(flat.param_groups().size(), 1u);
  EXPECT_EQ(flat.param_groups()[0].options,
            (Options{{"lr", 0.2}, {"beta1", 0.9}, {"beta2", 0.999}, {"eps", 1e-8}, {"weight_decay", 0}}));
  EXPECT_EQ(flat.param_groups()[0].params.size(), 2u);
}

TEST(ParamGroups, AnEmptyGroupIsAllowed) {
  Pair p;
  optim::AdamW opt(std::vector<optim::ParamGroup>{{{}, {{"lr", 1}}}, {{p.b}, {}}}, {.lr = 0.01});
  p.grads(0);
  opt.step();
  EXPECT_NE(values(p.b), kB);
  EXPECT_EQ(opt.state_dict().param_groups[1].params, std::vector<int64_t>{0});
}

// ---- bad groups ----

TEST(ParamGroups, BadGroupsNameTheGroupAndTheOption) {
  Pair p;
  Tensor c = leaf({1, 2}, {2});
  using Groups = std::vector<optim::ParamGroup>;
  expect_error(
      [&] {
        optim::Adam(Groups{{{p.a}, {}}, {{p.b}, {{"betas", 0.9}}}});
      },
      {"Adam: parameter group 1", "unknown option 'betas'", "'beta1'", "'weight_decay'"});
  expect_error(
      [&] {
        optim::SGD(Groups{{{p.a}, {{"momentum", 0.9}}}, {{p.b}, {{"momentum", -1}}}});
      },
      {"SGD: parameter group 1", "momentum", "-1"});
  expect_error(
      [&] {
        optim::SGD(Groups{{{p.a}, {{"nesterov", 0.5}}}});
      },
      {"SGD: parameter group 0", "'nesterov'", "flag"});
  expect_error(
      [&] {
        optim::SGD(Groups{{{p.a}, {}}, {{p.b}, {{"nesterov", 1}}}});
      },
      {"SGD: parameter group 1", "Nesterov"});
  expect_error([&] { optim::SGD(Groups{{{p.a}, {{"lr", NAN}}}}); }, {"SGD: parameter group 0", "learning rate"});
  expect_error(
      [&] {
        optim::AdamW(Groups{{{p.a}, {}}, {{p.b}, {{"weight_decay", -0.1}}}});
      },
      {"AdamW: parameter group 1", "weight_decay", "-0.1"});
  expect_error([&] { optim::Adam(Groups{{{p.a}, {{"beta2", 1}}}}); }, {"Adam: parameter group 0", "betas"});
  expect_error([&] { optim::Adam(Groups{{{p.a}, {{"eps", -1}}}}); }, {"Adam: parameter group 0", "eps"});
  expect_error(
      [&] {
        optim::Adam(Groups{{{p.a, c}, {}}, {{p.b, p.a}, {}}});
      },
      {"Adam: parameter group 1", "parameter 1", "already parameter 0 of parameter group 0"});
  expect_error(
      [&] {
        optim::SGD(Groups{{{p.a, p.b, p.a}, {}}});
      },
      {"parameter group 0", "parameter 2", "already parameter 0 of parameter group 0"});
  expect_error([&] { optim::SGD(Groups{}); }, {"SGD", "at least one parameter group"});
  Tensor frozen = from_vector(std::vector<double>{1});
  expect_error(
      [&] {
        optim::SGD(Groups{{{p.a}, {}}, {{frozen}, {}}});
      },
      {"parameter group 1", "parameter 0", "requires grad"});
  // The defaults are checked too, as torch.optim does.
  EXPECT_CONTAINS(error_of([&] { optim::SGD(Groups{{{p.a}, {}}}, {.lr = -1}); }), "learning rate");
}

// ---- state_dict ----

namespace {

struct Three {
  Tensor a = leaf(kA, {2, 2});
  Tensor b = leaf(kB, {3});
  Tensor c = leaf({0.5, -0.5}, {2});
  std::vector<optim::ParamGroup> groups(double lr_b) const {
    return {{{a}, {{"weight_decay", 0.2}}}, {{b, c}, {{"lr", lr_b}, {"beta1", 0.7}}}};
  }
  void grads(size_t t) const {
    a.set_grad(from_vector(kGradsA[t], {2, 2}));
    b.set_grad(from_vector(kGradsB[t], {3}));
    c.set_grad(from_vector(std::vector<double>{kGradsB[t][0], kGradsB[t][2]}, {2}));
  }
  std::vector<std::vector<double>> all() const { return {values(a), values(b), values(c)}; }
};

}  // namespace

TEST(ParamGroupsStateDict, HoldsEachGroupAndRoundTrips) {
  Three p;
  optim::AdamW opt(p.groups(0.02), {.lr = 0.01});
  opt.set_lr(0, 0.005);  // as a schedule would
  for (size_t t = 0; t < 2; ++t) {
    p.grads(t);
    opt.step();
  }
  optim::OptimizerState s = opt.state_dict();
  ASSERT_EQ(s.param_groups.size(), 2u);
  EXPECT_EQ(s.param_groups[0].params, std::vector<int64_t>{0});
  EXPECT_EQ(s.param_groups[1].params, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(s.param_groups[0].options.at("lr"), 0.005);
  EXPECT_EQ(s.param_groups[0].options.at("weight_decay"), 0.2);
  EXPECT_EQ(s.param_groups[1].options.at("lr"), 0.02);
  EXPECT_EQ(s.param_groups[1].options.at("beta1"), 0.7);
  EXPECT_EQ(s.param_groups[1].options.at("weight_decay"), 0.01);
  ASSERT_EQ(s.state.size(), 3u);
  EXPECT_EQ(s.state.at(2).at("step").item<int64_t>(), 2);

  // A fresh optimizer over copies, built with other options, continues exactly.
  Three q;
  {
    NoGradGuard guard;
    ops::copy_(q.a, p.a);
    ops::copy_(q.b, p.b);
    ops::copy_(q.c, p.c);
  }
  optim::AdamW resumed(q.groups(0.9), {.lr = 0.3, .weight_decay = 0});
  resumed.load_state_dict(s);
  EXPECT_EQ(all_values(resumed), all_values(opt));
  EXPECT_EQ(resumed.lr(1), 0.02);
  p.grads(2);
  q.grads(2);
  opt.step();
  resumed.step();
  EXPECT_EQ(q.all(), p.all());
  EXPECT_EQ(all_values(resumed), all_values(opt));
}

TEST(ParamGroupsStateDict, GroupMisfitsNameTheGroupAndChangeNothing) {
  Three p;
  optim::Adam opt(p.groups(0.02), {.lr = 0.01});
  p.grads(0);
  opt.step();
  const optim::OptimizerState good = opt.state_dict();
  const auto before = all_values(opt);
  struct Case {
    std::function<void(optim::OptimizerState&)> edit;
    std::vector<std::string> expect;
  };
  std::vector<Case> cases = {
      {[](auto& s) { s.param_groups.pop_back(); }, {"Adam::load_state_dict", "1 parameter groups", "has 2"}},
      {[](auto& s) { s.param_groups[1].params.pop_back(); }, {"parameter group 1", "holds 1 parameters", "holds 2"}},
      {[](auto& s) { std::swap(s.param_groups[1].params[0], s.param_groups[1].params[1]); },
       {"parameter group 1", "position 0", "expected 1"}},
      {[](auto& s) { s.param_groups[1].options.at("beta1") = 2; }, {"parameter group 1", "betas"}},
      {[](auto& s) { s.param_groups[0].options.at("lr") = -3; }, {"parameter group 0", "learning rate", "-3"}},
      {[](auto& s) { s.param_groups[1].options.erase("eps"); }, {"parameter group 1", "missing 'eps'"}},
  };
  for (size_t k = 0; k < cases.size(); ++k) {
    SCOPED_TRACE("case " + std::to_string(k));
    optim::OptimizerState bad = good;
    cases[k].edit(bad);
    expect_error([&] { opt.load_state_dict(bad); }, cases[k].expect);
    EXPECT_EQ(all_values(opt), before);
  }
  // The same parameters split differently: group sizes differ.
  Three q;
  optim::Adam other(std::vector<optim::ParamGroup>{{{q.a, q.b}, {}}, {{q.c}, {}}}, {.lr = 0.01});
  expect_error([&] { other.load_state_dict(good); }, {"parameter group 0", "holds 1 parameters", "holds 2"});
  // One flat group cannot take two groups' state.
  optim::Adam flat(std::vector<Tensor>{q.a, q.b, q.c}, {.lr = 0.01});
  expect_error([&] { flat.load_state_dict(good); }, {"2 parameter groups", "has 1"});
}

// ---- weight_decay_groups ----

namespace {

// A head whose weight is another module's (weight tying), as GPT's output layer is the token embedding.
struct TiedHead : nn::Module {
  Tensor weight;
  explicit TiedHead(const Tensor& w) : nn::Module("TiedLinear") { weight = register_parameter("weight", w); }
};

// A module that is not nn::Embedding but whose type name says it is one.
struct PositionTable : nn::Module {
  Tensor weight;
  PositionTable() : nn::Module("LearnedPositionalEmbedding") { weight = register_parameter("weight", randn({5, 4})); }
};

struct Tiny : nn::Module {
  nn::Linear fc = register_module("fc", nn::Linear(4, 6));
  nn::LayerNorm ln = register_module("ln", nn::LayerNorm(6));
  nn::Embedding wte = register_module("wte", nn::Embedding(10, 4));
  std::shared_ptr<PositionTable> wpe = register_module("wpe", std::make_shared<PositionTable>());
  std::shared_ptr<TiedHead> head = register_module("head", std::make_shared<TiedHead>(wte->weight));
  Tensor scale = register_parameter("scale", ones({4}));
};

// The tied head registered before the embedding: the table is first seen in a non-embedding module.
struct HeadFirst : nn::Module {
  nn::Embedding wte{10, 4};
  std::shared_ptr<TiedHead> head = register_module("head", std::make_shared<TiedHead>(wte->weight));
  nn::Linear proj = register_module("proj", nn::Linear(4, 4, /*bias=*/false));
  HeadFirst() { register_module("wte", wte); }
};

void expect_same_tensors(const std::vector<Tensor>& got, const std::vector<Tensor>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) EXPECT_TRUE(got[i].same(want[i])) << what << " entry " << i;
}

}  // namespace

TEST(WeightDecayGroups, LinearWeightsDecayBiasesLayerNormAndEmbeddingsDoNot) {
  Tiny model;
  std::vector<optim::ParamGroup> groups = optim::weight_decay_groups(model, 0.1);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].options, (std::map<std::string, double>{{"weight_decay", 0.1}}));
  EXPECT_EQ(groups[1].options, (std::map<std::string, double>{{"weight_decay", 0}}));
  expect_same_tensors(groups[0].params, {model.fc->weight}, "decaying");
  expect_same_tensors(
      groups[1].params,
      {model.scale, model.fc->bias, model.ln->weight, model.ln->bias, model.wte->weight, model.wpe->weight},
      "not decaying");

  // Every parameter exactly once, so an optimizer takes the groups as they are.
  optim::AdamW opt(groups, {.lr = 1e-3, .weight_decay = 0.1});
  EXPECT_EQ(opt.params().size(), model.parameters().size());
  EXPECT_EQ(opt.param_groups()[0].options.at("weight_decay"), 0.1);
  EXPECT_EQ(opt.param_groups()[1].options.at("weight_decay"), 0);
}

TEST(WeightDecayGroups, ATiedWeightNeverDecaysWhateverModuleRegisteredItFirst) {
  HeadFirst model;
  std::vector<optim::ParamGroup> groups = optim::weight_decay_groups(model, 0.5);
  expect_same_tensors(groups[0].params, {model.proj->weight}, "decaying");
  expect_same_tensors(groups[1].params, {model.wte->weight}, "not decaying");
  EXPECT_TRUE(model.head->weight.same(model.wte->weight));
}

TEST(WeightDecayGroups, RejectsABadWeightDecay) {
  Tiny model;
  expect_error([&] { optim::weight_decay_groups(model, -0.1); }, {"weight_decay_groups", "weight_decay", "-0.1"});
  EXPECT_THROW(optim::weight_decay_groups(model, NAN), Error);
}
