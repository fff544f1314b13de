// Modules ready to be cut and sharded: Sequential indexing and slicing (a slice shares the original's parameters),
// ModuleList, named_modules() and apply(), layers born on a device and dtype, and per-parameter parallel
// attributes that travel with the tensor.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "../test_util.h"
#include "braid/braid.h"

using namespace braid;
using braid::test::error_of;
using braid::test::expect_error;
using braid::test::names_of;

namespace {

struct Block : nn::Module {
  Block() : Module("Block") {}
  nn::Linear fc = register_module("fc", nn::Linear(3, 3));
};

struct Net : nn::Module {
  Net() : Module("Net") {}
  nn::Linear fc = register_module("fc", nn::Linear(2, 3));
  std::shared_ptr<Block> block = register_module("block", std::make_shared<Block>());
  nn::Dropout drop = register_module("drop", nn::Dropout(0.5));
  nn::LayerNorm norm = register_module("norm", nn::LayerNorm(3));
};

struct Stack : nn::Module {
  Stack() : Module("Stack") {
    for (int i = 0; i < 3; ++i) layers->push_back(nn::Linear(4, 4));
  }
  nn::ModuleList layers = register_module("layers", nn::ModuleList());
  Tensor forward(Tensor x) {
    for (const auto& m : *layers) x = relu(dynamic_cast<nn::LinearImpl&>(*m).forward(x));
    return x;
  }
};

nn::Sequential make_mlp() {
  return nn::Sequential(nn::Linear(4, 6), nn::Tanh(), nn::Linear(6, 5), nn::ReLU(), nn::Linear(5, 3));
}

}  // namespace

// ---- Sequential ----

TEST(Sequential, IndexingCountsFromTheEndAndChecksTheRange) {
  manual_seed(1);
  nn::Linear first(4, 6);
  nn::Sequential seq(first, nn::Tanh(), nn::Linear(6, 5), nn::ReLU(), nn::Linear(5, 3));
  EXPECT_EQ(seq->size(), 5u);
  EXPECT_EQ(seq[0].get(), first.get());  // the module itself, not a copy
  EXPECT_EQ(seq->ptr(0).get(), first.get());
  EXPECT_EQ(seq[1]->type_name(), "Tanh");
  EXPECT_EQ(seq[-1].get(), seq[4].get());
  EXPECT_EQ(seq[-5].get(), first.get());
  EXPECT_EQ(&seq->at<nn::LinearImpl>(0), first.get());
  EXPECT_EQ(seq->at<nn::LinearImpl>(-1).out_features, 3);

  expect_error([&] { (void)seq[5]; }, {"Sequential[5]", "out of range", "5 modules"});
  expect_error([&] { (void)seq[-6]; }, {"Sequential[-6]", "out of range"});
  expect_error([&] { seq->at<nn::LinearImpl>(1); }, {"Sequential", "module 1", "Tanh"});
  nn::Sequential empty;
  EXPECT_TRUE(empty->is_empty());
  expect_error([&] { (void)empty[0]; }, {"Sequential[0]", "0 modules"});

  // Iteration visits the modules in order.
  std::vector<std::string> types;
  for (const auto& m : *seq) types.push_back(m->type_name());
  EXPECT_EQ(types, (std::vector<std::string>{"Linear", "Tanh", "Linear", "ReLU", "Linear"}));
}

TEST(Sequential, SliceSharesParametersAndKeepsNames) {
  manual_seed(2);
  nn::Sequential seq = make_mlp();
  nn::Sequential head = seq->slice(0, 2), tail = seq->slice(2, 5);
  EXPECT_EQ(head->size(), 2u);
  EXPECT_EQ(tail->size(), 3u);
  EXPECT_EQ(tail[0].get(), seq[2].get());
  // The slices hold the original's modules under the original's names, so stage state dicts use its keys.
  EXPECT_EQ(names_of(tail->named_parameters()), (std::vector<std::string>{"2.weight", "2.bias", "4.weight", "4.bias"}));
  auto full = seq->named_parameters(), cut = tail->named_parameters();
  for (size_t i = 0; i < cut.size(); ++i) EXPECT_TRUE(cut[i].second.same(full[i + 2].second)) << cut[i].first;

  // Running the stages one after the other is running the model.
  Tensor x = randn({7, 4});
  EXPECT_EQ(tail(head(x)).to_vector<float>(), seq(x).to_vector<float>());

  // Training a slice trains the original: the parameters are the same tensors, not copies.
  std::vector<float> before = seq->at<nn::LinearImpl>(2).weight.to_vector<float>();
  optim::SGD sgd(tail->parameters(), {.lr = 0.5});
  sum(tail(head(x))).backward();
  sgd.step();
  std::vector<float> after = seq->at<nn::LinearImpl>(2).weight.to_vector<float>();
  EXPECT_NE(after, before);
  EXPECT_EQ(after, tail->at<nn::LinearImpl>(0).weight.to_vector<float>());

  // Negative bounds count from the end; an empty slice is allowed; a bad range is an error.
  nn::Sequential last_two = seq->slice(-2, 5);
  EXPECT_EQ(last_two[0].get(), seq[3].get());
  EXPECT_EQ(seq->slice(3, 3)->size(), 0u);
  expect_error([&] { seq->slice(3, 2); }, {"Sequential.slice(3, 2)", "5 modules"});
  expect_error([&] { seq->slice(0, 6); }, {"Sequential.slice(0, 6)"});
  expect_error([&] { seq->slice(-6, 2); }, {"Sequential.slice(-6, 2)"});

  // A module appended to a slice is named after the slice's last name.
  tail->push_back(nn::Linear(3, 2));
  EXPECT_EQ(names_of(tail->named_children()), (std::vector<std::string>{"2", "3", "4", "5"}));
  EXPECT_EQ(seq->size(), 5u) << "appending to a slice must not change the original";

  // A slice of a model in eval mode is in eval mode.
  seq->eval();
  EXPECT_FALSE(seq->slice(0, 1)->is_training());
}

TEST(Sequential, PushBackTakesHoldersAndSharedPointers) {
  nn::Sequential seq;
  auto fc = std::make_shared<nn::LinearImpl>(2, 3);
  seq->push_back(fc);
  seq->push_back(nn::ReLU());
  EXPECT_EQ(seq[0].get(), fc.get());
  Tensor x = randn({4, 2});
  EXPECT_EQ(seq(x).to_vector<float>(), relu(fc->forward(x)).to_vector<float>());
}

// ---- ModuleList ----

TEST(ModuleList, NamesIndexingAndIteration) {
  manual_seed(3);
  Stack stack;
  EXPECT_EQ(stack.layers->size(), 3u);
  EXPECT_EQ(names_of(stack.named_parameters()),
            (std::vector<std::string>{"layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias",
                                      "layers.2.weight", "layers.2.bias"}));
  nn::Linear extra(4, 4);
  stack.layers->append(extra);
  EXPECT_EQ(stack.layers->size(), 4u);
  EXPECT_EQ(stack.layers[3].get(), extra.get());
  EXPECT_EQ(stack.layers[-1].get(), extra.get());
  EXPECT_EQ(&stack.layers->at<nn::LinearImpl>(3), extra.get());
  EXPECT_TRUE(stack.parameters().back().same(extra->bias));
  expect_error([&] { (void)stack.layers[4]; }, {"ModuleList[4]", "out of range", "4 modules"});
  expect_error([&] { (void)stack.layers[-5]; }, {"ModuleList[-5]"});

  // The owner's forward calls the modules itself.
  Tensor x = randn({2, 4});
  Tensor expected = x;
  for (int i = 0; i < 4; ++i) expected = relu(stack.layers->at<nn::LinearImpl>(i).forward(expected));
  EXPECT_EQ(stack.forward(x).to_vector<float>(), expected.to_vector<float>());

  nn::ModuleList mixed(nn::Linear(2, 2), nn::ReLU());
  EXPECT_EQ(mixed->size(), 2u);
  expect_error([&] { mixed->at<nn::LinearImpl>(1); }, {"ModuleList", "module 1", "ReLU"});
  EXPECT_EQ(names_of(mixed->named_children()), (std::vector<std::string>{"0", "1"}));
}

// ---- named_modules and apply ----

TEST(Module, NamedModulesArePrefixedDepthFirst) {
  Net net;
  auto named = net.named_modules();
  EXPECT_EQ(names_of(named), (std::vector<std::string>{"", "fc", "block", "block.fc", "drop", "norm"}));
  EXPECT_EQ(named[0].second.get(), &net);
  EXPECT_EQ(named[3].second.get(), net.block->fc.get());
  EXPECT_EQ(net.modules().size(), 6u);

  // A module registered under two names is listed once, under its first name.
  auto shared = std::make_shared<nn::LinearImpl>(2, 2);
  auto outer = std::make_shared<nn::Module>("Outer");
  outer->register_module("a", shared);
  outer->register_module("b", nn::Sequential(nn::Tanh()));
  outer->register_module("c", shared);
  auto outer_named = outer->named_modules();
  EXPECT_EQ(names_of(outer_named), (std::vector<std::string>{"", "a", "b", "b.0"}));
  // A module held by a shared_ptr hands out an owning pointer to itself.
  EXPECT_EQ(outer_named[0].second, outer);

  nn::Sequential seq = make_mlp();
  EXPECT_EQ(names_of(seq->named_modules()), (std::vector<std::string>{"", "0", "1", "2", "3", "4"}));
}

TEST(Module, ApplyVisitsChildrenBeforeParentsAndEachOnce) {
  Net net;
  std::vector<std::string> order;
  nn::Module& self = net.apply([&](nn::Module& m) { order.push_back(m.type_name()); });
  EXPECT_EQ(&self, &net);
  EXPECT_EQ(order, (std::vector<std::string>{"Linear", "Linear", "Block", "Dropout", "LayerNorm", "Net"}));

  // The usual use: re-initialise every Linear.
  net.apply([](nn::Module& m) {
    NoGradGuard guard;
    if (auto* fc = dynamic_cast<nn::LinearImpl*>(&m)) nn::init::constant_(fc->weight, 0.25);
  });
  for (float v : net.fc->weight.to_vector<float>()) EXPECT_EQ(v, 0.25f);
  for (float v : net.block->fc->weight.to_vector<float>()) EXPECT_EQ(v, 0.25f);
  EXPECT_EQ(net.norm->weight.to_vector<float>(), std::vector<float>(3, 1.0f));

  auto shared = std::make_shared<nn::LinearImpl>(2, 2);
  nn::Module outer("Outer");
  outer.register_module("a", shared);
  outer.register_module("b", shared);
  int calls = 0;
  outer.apply([&](nn::Module&) { ++calls; });
  EXPECT_EQ(calls, 2);  // the shared Linear once, then Outer
}

// ---- device and dtype options ----

TEST(LayerOptions, Float64ParametersAreTheFloat32OnesWithoutRounding) {
  manual_seed(4);
  nn::Linear f32(5, 3);
  manual_seed(4);
  nn::Linear f64(5, 3, {.dtype = DType::Float64});
  EXPECT_EQ(f64->weight.dtype(), DType::Float64);
  EXPECT_EQ(f64->bias.dtype(), DType::Float64);
  // One stream of doubles feeds both; the float32 parameters are the float64 ones rounded.
  std::vector<double> w64 = f64->weight.to_vector<double>(), b64 = f64->bias.to_vector<double>();
  std::vector<float> w32 = f32->weight.to_vector<float>(), b32 = f32->bias.to_vector<float>();
  for (size_t i = 0; i < w64.size(); ++i) EXPECT_EQ(float(w64[i]), w32[i]) << i;
  for (size_t i = 0; i < b64.size(); ++i) EXPECT_EQ(float(b64[i]), b32[i]) << i;
  bool any_inexact = false;
  for (size_t i = 0; i < w64.size(); ++i) any_inexact |= double(w32[i]) != w64[i];
  EXPECT_TRUE(any_inexact) << "float64 parameters must be drawn in float64, not widened from float32";

  nn::Linear nobias(5, 3, {.bias = false, .dtype = DType::Float64});
  EXPECT_FALSE(nobias->bias.defined());
  EXPECT_EQ(nobias->weight.dtype(), DType::Float64);

  manual_seed(5);
  nn::Embedding e32(6, 2);
  manual_seed(5);
  nn::Embedding e64(6, 2, {.dtype = DType::Float64});
  std::vector<double> ev64 = e64->weight.to_vector<double>();
  std::vector<float> ev32 = e32->weight.to_vector<float>();
  for (size_t i = 0; i < ev64.size(); ++i) EXPECT_EQ(float(ev64[i]), ev32[i]) << i;

  nn::LayerNorm ln(Shape{2, 3}, {.eps = 1e-3, .dtype = DType::Float64});
  EXPECT_EQ(ln->weight.dtype(), DType::Float64);
  EXPECT_EQ(ln->weight.shape(), (Shape{2, 3}));
  EXPECT_EQ(ln->eps, 1e-3);
  nn::LayerNorm plain(4, {.elementwise_affine = false});
  EXPECT_TRUE(plain->parameters().empty());

  // The constructors from before the options keep working.
  nn::Linear old(5, 3, false, DType::Float64);
  EXPECT_EQ(old->weight.dtype(), DType::Float64);
  EXPECT_FALSE(old->bias.defined());
  EXPECT_EQ(nn::Embedding(4, 2, DType::Float64)->weight.dtype(), DType::Float64);
  EXPECT_EQ(nn::LayerNorm(Shape{3}, 1e-5, true, DType::Float64)->bias.dtype(), DType::Float64);
}

TEST(LayerOptions, ParametersAreBornOnTheDeviceWithTheCpuValues) {
  if (!cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  Device gpu = Device::cuda(0);
  manual_seed(6);
  nn::Linear cpu_fc(7, 5);
  nn::Embedding cpu_emb(4, 3);
  manual_seed(6);
  nn::Linear gpu_fc(7, 5, {.device = gpu});
  nn::Embedding gpu_emb(4, 3, {.device = gpu});
  nn::LayerNorm gpu_ln(3, {.device = gpu});
  for (const Tensor& p : {gpu_fc->weight, gpu_fc->bias, gpu_emb->weight, gpu_ln->weight, gpu_ln->bias}) {
    EXPECT_EQ(p.device(), gpu);
    EXPECT_TRUE(p.requires_grad());
    EXPECT_TRUE(p.is_leaf());
  }
  EXPECT_EQ(gpu_fc->weight.to_vector<float>(), cpu_fc->weight.to_vector<float>());
  EXPECT_EQ(gpu_fc->bias.to_vector<float>(), cpu_fc->bias.to_vector<float>());
  EXPECT_EQ(gpu_emb->weight.to_vector<float>(), cpu_emb->weight.to_vector<float>());
  Tensor x = randn({2, 7});
  EXPECT_TRUE(ops::allclose(ops::to_device(gpu_fc(ops::to_device(x, gpu)), Device::cpu()), cpu_fc(x), 1e-5, 1e-6));
}

// ---- parallel attributes ----

TEST(ParallelAttributes, TravelWithTheTensorThroughToAndStateDict) {
  nn::Linear fc(4, 6);
  EXPECT_FALSE(nn::is_sharded(fc->weight));
  nn::ParallelAttributes none = nn::parallel_attributes(fc->weight);
  EXPECT_EQ(none.shard_dim, -1);
  EXPECT_EQ(none.num_shards, 1);
  EXPECT_EQ(none.group, nullptr);

  // A tensor-parallel size of 1: split along dim 0 into one shard, so not sharded and no group needed.
  nn::set_parallel_attributes(fc->weight, {.shard_dim = 0, .num_shards = 1, .shard_rank = 0});
  Tensor handle = fc->weight;  // another handle to the same parameter sees them
  EXPECT_EQ(nn::parallel_attributes(handle).shard_dim, 0);
  EXPECT_FALSE(nn::is_sharded(handle));

  fc->to(DType::Float64);
  EXPECT_EQ(fc->weight.dtype(), DType::Float64);
  EXPECT_EQ(nn::parallel_attributes(fc->weight).shard_dim, 0) << "Module::to must keep the attributes";
  fc->to(Device::cpu());
  EXPECT_EQ(nn::parallel_attributes(fc->weight).shard_dim, 0);
  if (cuda::is_available()) {
    fc->to(Device::cuda(0));
    EXPECT_EQ(fc->weight.device(), Device::cuda(0));
    EXPECT_EQ(nn::parallel_attributes(fc->weight).shard_dim, 0);
  }

  nn::StateDict sd = fc->state_dict();
  EXPECT_EQ(nn::parallel_attributes(sd.at("weight")).shard_dim, 0);
  EXPECT_EQ(nn::parallel_attributes(sd.at("bias")).shard_dim, -1);
  // Results of ops are new tensors: they carry no attributes.
  EXPECT_EQ(nn::parallel_attributes(fc->weight * 2.0).shard_dim, -1);
}

TEST(ParallelAttributes, InvalidAttributesAreRejected) {
  Tensor w = zeros({4, 6});
  expect_error([&] { nn::set_parallel_attributes(w, {.shard_dim = 2}); },
               {"set_parallel_attributes", "shard_dim 2", "[4, 6]"});
  expect_error([&] { nn::set_parallel_attributes(w, {.shard_dim = -2}); }, {"shard_dim -2"});
  expect_error([&] { nn::set_parallel_attributes(w, {.shard_dim = 0, .num_shards = 0}); }, {"num_shards", "0"});
  expect_error([&] { nn::set_parallel_attributes(w, {.shard_dim = 0, .num_shards = 2, .shard_rank = 2}); },
               {"shard_rank 2", "[0, 2)"});
  expect_error([&] { nn::set_parallel_attributes(w, {.shard_dim = 1, .num_shards = 2, .shard_rank = 1}); },
               {"2 shards", "dim 1", "group"});
  expect_error([&] { nn::set_parallel_attributes(Tensor(), {}); }, {"undefined"});
  EXPECT_FALSE(nn::is_sharded(w)) << "a rejected call must leave the tensor as it was";
}
