// The whole training state in one checkpoint: training k steps, saving, loading into a fresh model, optimizer and
// schedule and training on equals the uninterrupted run bit for bit; the file's layout; loud, harmless failures.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../test_util.h"
#include "braid/braid.h"

using namespace braid;
using braid::test::expect_error;
using braid::test::optimizer_values;
using nlohmann::json;

namespace {

class TrainingStateTest : public braid::test::TempDirTest {};

nn::Sequential make_model(uint64_t seed, int64_t hidden = 8) {
  manual_seed(seed);
  return nn::Sequential(nn::Linear(4, hidden), nn::ReLU(), nn::Linear(hidden, 3));
}

enum class Kind { SgdMomentum, Adam, AdamW };

std::unique_ptr<optim::Optimizer> make_optimizer(Kind kind, const std::vector<Tensor>& params, double lr) {
  switch (kind) {
    case Kind::SgdMomentum:
      return std::make_unique<optim::SGD>(params, optim::SGDOptions{.lr = lr, .momentum = 0.9, .weight_decay = 1e-3});
    case Kind::Adam:
      return std::make_unique<optim::Adam>(params, optim::AdamOptions{.lr = lr, .weight_decay = 1e-2});
    case Kind::AdamW:
      return std::make_unique<optim::AdamW>(params, optim::AdamWOptions{.lr = lr});
  }
  return nullptr;
}

// A fixed data set, and a different batch at each step, so the optimizer state matters.
struct Data {
  Tensor x, y;
  Data() {
    Generator gen(42);
    x = randn({24, 4}, DType::Float32, &gen);
    y = from_vector(std::vector<int64_t>{0, 1, 2, 1, 0, 2, 2, 1, 0, 0, 1, 2, 1, 1, 0, 2, 0, 1, 2, 2, 1, 0, 0, 1});
  }
  // Steps `from` .. to-1 on batches of 6; returns each step's loss.
  std::vector<float> train(nn::Sequential& model, optim::Optimizer& opt, optim::LRScheduler& sched, int from,
                           int to) const {
    std::vector<float> losses;
    for (int s = from; s < to; ++s) {
      int64_t begin = (s * 6) % 24;
      opt.zero_grad();
      Tensor loss = nn::cross_entropy(model(ops::narrow(x, 0, begin, 6)), ops::narrow(y, 0, begin, 6));
      loss.backward();
      opt.step();
      sched.step();
      losses.push_back(loss.item<float>());
    }
    return losses;
  }
};

std::vector<std::vector<float>> parameter_values(nn::Sequential& model) {
  std::vector<std::vector<float>> out;
  for (const Tensor& p : model->parameters()) out.push_back(p.to_vector<float>());
  return out;
}

}  // namespace

class ResumeTest : public TrainingStateTest, public ::testing::WithParamInterface<Kind> {};

TEST_P(ResumeTest, SaveLoadAndContinueEqualsTheUninterruptedRunBitForBit) {
  const Data data;
  const int k = 5, total = 12;

  nn::Sequential whole = make_model(1);
  auto whole_opt = make_optimizer(GetParam(), whole->parameters(), 0.05);
  optim::CosineAnnealingLR whole_sched(*whole_opt, total, 0.001);
  std::vector<float> whole_losses = data.train(whole, *whole_opt, whole_sched, 0, total);

  nn::Sequential first = make_model(1);
  auto first_opt = make_optimizer(GetParam(), first->parameters(), 0.05);
  optim::CosineAnnealingLR first_sched(*first_opt, total, 0.001);
  std::vector<float> losses = data.train(first, *first_opt, first_sched, 0, k);
  std::string file = path("state.safetensors");
  nn::save_training_state(file, *first, *first_opt, first_sched, {{"step", std::to_string(k)}});

  // Everything fresh and different: other weights, another learning rate, another schedule length.
  nn::Sequential resumed = make_model(99);
  auto resumed_opt = make_optimizer(GetParam(), resumed->parameters(), 0.7);
  optim::CosineAnnealingLR resumed_sched(*resumed_opt, 3);
  nn::Metadata extra = nn::load_training_state(file, *resumed, *resumed_opt, resumed_sched);
  EXPECT_EQ(extra, (nn::Metadata{{"step", "5"}}));
  EXPECT_EQ(resumed_sched.last_epoch(), k);
  EXPECT_EQ(resumed_opt->lr(), first_opt->lr());
  EXPECT_EQ(optimizer_values(*resumed_opt), optimizer_values(*first_opt));
  std::vector<float> rest = data.train(resumed, *resumed_opt, resumed_sched, k, total);
  losses.insert(losses.end(), rest.begin(), rest.end());

  EXPECT_EQ(losses, whole_losses);
  EXPECT_EQ(parameter_values(resumed), parameter_values(whole));
  EXPECT_EQ(optimizer_values(*resumed_opt), optimizer_values(*whole_opt));
  EXPECT_NE(parameter_values(resumed), parameter_values(first)) << "the continuation trained";
}

INSTANTIATE_TEST_SUITE_P(Optimizers, ResumeTest, ::testing::Values(Kind::SgdMomentum, Kind::Adam, Kind::AdamW),
                         [](const auto& info) {
                           switch (info.param) {
                             case Kind::SgdMomentum:
                               return std::string("SgdMomentum");
                             case Kind::Adam:
                               return std::string("Adam");
                             case Kind::AdamW:
                               return std::string("AdamW");
                           }
                           return std::string();
                         });

namespace {

// GPT-style groups (weights decay, biases do not), the biases at half the rate.
std::unique_ptr<optim::AdamW> grouped_adamw(nn::Sequential& model, double lr) {
  std::vector<optim::ParamGroup> groups = optim::weight_decay_groups(*model, 0.1);
  groups[1].options["lr"] = lr / 2;
  return std::make_unique<optim::AdamW>(groups, optim::AdamWOptions{.lr = lr});
}

// Every group's options and parameter indices, and each parameter's state, as numbers.
std::map<std::string, std::vector<double>> all_groups_values(const optim::Optimizer& opt) {
  std::map<std::string, std::vector<double>> out;
  optim::OptimizerState s = opt.state_dict();
  for (size_t g = 0; g < s.param_groups.size(); ++g) {
    const std::string prefix = "group" + std::to_string(g) + ".";
    for (const auto& [k, v] : s.param_groups[g].options) out[prefix + k] = {v};
    for (int64_t i : s.param_groups[g].params) out[prefix + "params"].push_back(double(i));
  }
  for (const auto& [i, state] : s.state)
    for (const auto& [k, t] : state) out[std::to_string(i) + "." + k] = t.to_vector<double>();
  return out;
}

}  // namespace

TEST_F(TrainingStateTest, ParamGroupsAndWarmupCosineResumeBitForBit) {
  const Data data;
  const int k = 4, total = 10;

  nn::Sequential whole = make_model(1);
  auto whole_opt = grouped_adamw(whole, 0.05);
  optim::WarmupCosineLR whole_sched(*whole_opt, 3, total, 0.001);
  std::vector<float> whole_losses = data.train(whole, *whole_opt, whole_sched, 0, total);

  nn::Sequential first = make_model(1);
  auto first_opt = grouped_adamw(first, 0.05);
  optim::WarmupCosineLR first_sched(*first_opt, 3, total, 0.001);
  std::vector<float> losses = data.train(first, *first_opt, first_sched, 0, k);
  std::string file = path("state.safetensors");
  nn::save_training_state(file, *first, *first_opt, first_sched);

  // The file holds both groups, numbered over the optimizer's parameters (weights first, then biases).
  nn::Metadata md = nn::load_metadata(file);
  json groups = json::parse(md.at("optimizer.param_groups"));
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0]["params"], json({0, 1}));
  EXPECT_EQ(groups[1]["params"], json({2, 3}));
  EXPECT_EQ(groups[0]["weight_decay"].get<double>(), 0.1);
  EXPECT_EQ(groups[1]["weight_decay"].get<double>(), 0);
  EXPECT_EQ(groups[1]["lr"].get<double>(), first_opt->lr(1));
  EXPECT_EQ(md.at("scheduler"), "WarmupCosineLR");
  json sched_state = json::parse(md.at("scheduler.state"));
  EXPECT_EQ(sched_state["base_lrs"], json({0.05, 0.025}));
  EXPECT_EQ(sched_state["warmup_steps"].get<double>(), 3);
  EXPECT_EQ(sched_state["total_steps"].get<double>(), total);

  nn::Sequential resumed = make_model(99);
  auto resumed_opt = grouped_adamw(resumed, 0.7);
  optim::WarmupCosineLR resumed_sched(*resumed_opt, 1, 2);
  nn::load_training_state(file, *resumed, *resumed_opt, resumed_sched);
  EXPECT_EQ(resumed_sched.last_epoch(), k);
  EXPECT_EQ(resumed_opt->lr(0), first_opt->lr(0));
  EXPECT_EQ(resumed_opt->lr(1), first_opt->lr(1));
  EXPECT_EQ(all_groups_values(*resumed_opt), all_groups_values(*first_opt));
  std::vector<float> rest = data.train(resumed, *resumed_opt, resumed_sched, k, total);
  losses.insert(losses.end(), rest.begin(), rest.end());
  EXPECT_EQ(losses, whole_losses);
  EXPECT_EQ(parameter_values(resumed), parameter_values(whole));
  EXPECT_EQ(all_groups_values(*resumed_opt), all_groups_values(*whole_opt));

  // An optimizer with one group refuses the file, and is left as it was.
  nn::Sequential flat = make_model(2);
  optim::AdamW flat_opt(flat->parameters(), {.lr = 0.3});
  optim::WarmupCosineLR flat_sched(flat_opt, 1, 5);
  const auto before = all_groups_values(flat_opt);
  expect_error([&] { nn::load_training_state(file, *flat, flat_opt, flat_sched); },
               {"nn::load_training_state", file, "2 parameter groups", "has 1"});
  EXPECT_EQ(all_groups_values(flat_opt), before);
}

TEST_F(TrainingStateTest, FileLayoutIsReadableAsPlainSafetensors) {
  const Data data;
  nn::Sequential model = make_model(1);
  optim::Adam opt(model->parameters(), {.lr = 0.01, .beta1 = 0.8});
  optim::StepLR sched(opt, 2, 0.5);
  data.train(model, opt, sched, 0, 3);
  std::string file = path("state.safetensors");
  nn::save_training_state(file, *model, opt, sched, {{"epoch", "7"}});

  nn::Metadata md;
  nn::StateDict tensors = nn::load(file, md);
  EXPECT_EQ(md.at("braid.training_state"), "1");
  EXPECT_EQ(md.at("optimizer"), "Adam");
  EXPECT_EQ(md.at("scheduler"), "StepLR");
  EXPECT_EQ(md.at("extra.epoch"), "7");
  json groups = json::parse(md.at("optimizer.param_groups"));
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0]["params"], json({0, 1, 2, 3}));
  EXPECT_EQ(groups[0]["beta1"].get<double>(), 0.8);
  EXPECT_EQ(groups[0]["lr"].get<double>(), 0.005) << "the rate after the schedule's third step";
  json sched_state = json::parse(md.at("scheduler.state"));
  EXPECT_EQ(sched_state["last_epoch"], 3);
  EXPECT_EQ(sched_state["base_lrs"], json({0.01}));
  EXPECT_EQ(sched_state["step_size"].get<double>(), 2);
  EXPECT_EQ(sched_state["gamma"].get<double>(), 0.5);

  // Model tensors under model., each parameter's Adam state under optimizer.state.<index>.
  nn::StateDict model_dict = model->state_dict();
  EXPECT_EQ(tensors.size(), model_dict.size() + 4 * 3);
  for (auto& [name, t] : model_dict) EXPECT_EQ(tensors.at("model." + name).to_vector<float>(), t.to_vector<float>());
  optim::OptimizerState os = opt.state_dict();
  for (int64_t i = 0; i < 4; ++i) {
    std::string prefix = "optimizer.state." + std::to_string(i) + ".";
    EXPECT_EQ(tensors.at(prefix + "exp_avg").to_vector<float>(), os.state[i].at("exp_avg").to_vector<float>());
    EXPECT_EQ(tensors.at(prefix + "exp_avg_sq").to_vector<float>(), os.state[i].at("exp_avg_sq").to_vector<float>());
    EXPECT_EQ(tensors.at(prefix + "step").dtype(), DType::Int64);
    EXPECT_EQ(tensors.at(prefix + "step").item<int64_t>(), 3);
  }
  // No temporary file is left.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_), {}), 1);
}

TEST_F(TrainingStateTest, WithoutASchedule) {
  nn::Sequential model = make_model(1);
  optim::SGD opt(model->parameters(), {.lr = 0.1});
  std::string file = path("state.safetensors");
  nn::save_training_state(file, *model, opt);
  EXPECT_EQ(nn::load_metadata(file).count("scheduler"), 0u);
  nn::Sequential other = make_model(2);
  optim::SGD other_opt(other->parameters(), {.lr = 0.3});
  EXPECT_TRUE(nn::load_training_state(file, *other, other_opt).empty());
  EXPECT_EQ(parameter_values(other), parameter_values(model));
  EXPECT_EQ(other_opt.lr(), 0.1);
}

TEST_F(TrainingStateTest, MisfitsNameTheFileAndChangeNothing) {
  const Data data;
  nn::Sequential model = make_model(1);
  optim::Adam opt(model->parameters(), {.lr = 0.01});
  optim::CosineAnnealingLR sched(opt, 10);
  data.train(model, opt, sched, 0, 2);
  std::string good = path("good.safetensors");
  nn::save_training_state(good, *model, opt, sched);

  // The target: trained a little differently, so any partial load would show.
  nn::Sequential target = make_model(5);
  optim::Adam target_opt(target->parameters(), {.lr = 0.02});
  optim::CosineAnnealingLR target_sched(target_opt, 20);
  data.train(target, target_opt, target_sched, 0, 1);
  const auto params_before = parameter_values(target);
  const auto opt_before = optimizer_values(target_opt);
  auto expect_unchanged = [&] {
    EXPECT_EQ(parameter_values(target), params_before);
    EXPECT_EQ(optimizer_values(target_opt), opt_before);
    EXPECT_EQ(target_sched.last_epoch(), 1);
    EXPECT_EQ(target_sched.state_dict().options.at("T_max"), 20);
  };
  auto expect_refused = [&](const std::string& file, const std::vector<std::string>& parts) {
    std::vector<std::string> all = {"nn::load_training_state", file};
    all.insert(all.end(), parts.begin(), parts.end());
    expect_error([&] { nn::load_training_state(file, *target, target_opt, target_sched); }, all);
    expect_unchanged();
  };
  // The good file itself loads.
  {
    nn::Sequential m = make_model(5);
    optim::Adam o(m->parameters());
    optim::CosineAnnealingLR s(o, 3);
    nn::load_training_state(good, *m, o, s);
    EXPECT_EQ(parameter_values(m), parameter_values(model));
  }

  nn::Metadata md;
  const nn::StateDict tensors = nn::load(good, md);
  // The misfits below are crafted files without a checksum (as files from before checksums), so each reaches the
  // check it is meant for.
  ASSERT_EQ(md.erase("braid.checksum"), 1u);
  auto write = [&](const std::string& name, const nn::StateDict& t, const nn::Metadata& m) {
    std::string p = path(name);
    nn::save(t, p, m);
    return p;
  };

  // A model-only checkpoint.
  std::string model_only = path("model.safetensors");
  nn::save(*model, model_only);
  expect_refused(model_only, {"not a training-state file", "braid.training_state"});
  // Another layout version.
  nn::Metadata v2 = md;
  v2["braid.training_state"] = "2";
  expect_refused(write("v2.safetensors", tensors, v2), {"version '2'"});
  // Another optimizer, another schedule, a schedule missing or unexpected.
  {
    optim::SGD sgd(target->parameters(), {.lr = 0.1});
    optim::CosineAnnealingLR s(sgd, 10);
    expect_error([&] { nn::load_training_state(good, *target, sgd, s); }, {good, "optimizer Adam, not of SGD"});
    optim::StepLR step(target_opt, 3);
    expect_error([&] { nn::load_training_state(good, *target, target_opt, step); },
                 {good, "CosineAnnealingLR, not of StepLR"});
    expect_error([&] { nn::load_training_state(good, *target, target_opt); }, {good, "no scheduler was given"});
    std::string no_sched = path("no_sched.safetensors");
    nn::save_training_state(no_sched, *model, opt);
    expect_refused(no_sched, {"holds no LR schedule"});
  }
  // A model of another shape: the model is checked whole, and the optimizer was not touched before.
  {
    nn::Sequential wide = make_model(1, 16);
    optim::Adam wide_opt(wide->parameters());
    optim::CosineAnnealingLR wide_sched(wide_opt, 10);
    std::string wide_file = path("wide.safetensors");
    data.train(wide, wide_opt, wide_sched, 0, 1);
    nn::save_training_state(wide_file, *wide, wide_opt, wide_sched);
    expect_refused(wide_file, {"[16, 4]"});
  }
  // Optimizer state that does not fit, with the model fine: the model must stay as it was too.
  {
    nn::StateDict t = tensors;
    t["optimizer.state.1.exp_avg"] = zeros({5});
    expect_refused(write("state_shape.safetensors", t, md), {"parameter 1", "'exp_avg'", "[5]", "[8]"});
    t = tensors;
    t["optimizer.state.0.exp_avg_sq"] = ops::to_dtype(t.at("optimizer.state.0.exp_avg_sq"), DType::Float64);
    expect_refused(write("state_dtype.safetensors", t, md), {"parameter 0", "'exp_avg_sq'", "float64"});
    t = tensors;
    t.erase("optimizer.state.3.step");
    expect_refused(write("state_missing.safetensors", t, md), {"parameter 3", "missing 'step'"});
    t = tensors;
    t["optimizer.state.x.step"] = t.at("optimizer.state.0.step");
    expect_refused(write("state_name.safetensors", t, md), {"optimizer.state.x.step", "<parameter index>"});
    t = tensors;
    t["optimizer.state.9.step"] = t.at("optimizer.state.0.step");
    expect_refused(write("state_index.safetensors", t, md), {"parameter 9"});
    t = tensors;
    t["other.thing"] = zeros({1});
    expect_refused(write("unexpected.safetensors", t, md), {"unexpected tensor 'other.thing'"});
    t = tensors;
    t.erase("model.2.bias");
    expect_refused(write("model_missing.safetensors", t, md), {"2.bias"});
  }
  // Damaged metadata.
  {
    nn::Metadata m = md;
    m["optimizer.param_groups"] = "[{\"lr\": 0.1,";
    expect_refused(write("json.safetensors", tensors, m), {"optimizer.param_groups", "not valid JSON"});
    m = md;
    m["optimizer.param_groups"] = R"([{"lr": 0.1, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0}])";
    expect_refused(write("params.safetensors", tensors, m), {"no 'params' list"});
    m = md;
    m["optimizer.param_groups"] =
        R"([{"lr": "fast", "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0, "params": [0, 1, 2, 3]}])";
    expect_refused(write("lr.safetensors", tensors, m), {"'lr'", "\"fast\"", "expected a number"});
    // Deep enough that printing it (dump() recurses per level) overflowed the stack: named by its type instead.
    m = md;
    const std::string deep = std::string(300000, '[') + std::string(300000, ']');
    m["optimizer.param_groups"] = R"([{"lr": )" + deep +
                                  R"(, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0, "params": [0, 1, 2, 3]}])";
    expect_refused(write("deep_lr.safetensors", tensors, m), {"'lr'", "is array, expected a number"});
    m = md;
    m["optimizer.param_groups"] =
        R"([{"lr": 0.1, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0, "params": [0, 1, 2]}])";
    expect_refused(write("count.safetensors", tensors, m), {"holds 3 parameters", "holds 4"});
    m = md;
    m.erase("scheduler.state");
    expect_refused(write("sched_missing.safetensors", tensors, m), {"no 'scheduler.state'"});
    m = md;
    m["scheduler.state"] = R"({"last_epoch": 2, "base_lrs": [0.01], "T_max": 10})";
    expect_refused(write("sched_option.safetensors", tensors, m), {"'eta_min'"});
    m = md;
    m["scheduler.state"] = R"({"last_epoch": 2.5, "base_lrs": [0.01], "T_max": 10, "eta_min": 0})";
    expect_refused(write("sched_epoch.safetensors", tensors, m), {"integer 'last_epoch'"});
  }
  // A damaged file is nn::load's error, which names the file.
  {
    std::string cut = path("cut.safetensors");
    std::filesystem::copy_file(good, cut);
    std::filesystem::resize_file(cut, std::filesystem::file_size(good) - 3);
    expect_error([&] { nn::load_training_state(cut, *target, target_opt, target_sched); }, {cut, "truncated"});
    expect_unchanged();
  }
}

TEST_F(TrainingStateTest, SaveErrorsNameTheFile) {
  nn::Sequential model = make_model(1);
  optim::SGD opt(model->parameters(), {.lr = 0.1});
  std::string missing = path("no/such/dir/state.safetensors");
  expect_error([&] { nn::save_training_state(missing, *model, opt); }, {missing, "No such file or directory"});
  std::string p = path("s.safetensors");
  expect_error([&] { nn::save_training_state(p, *model, opt, {{"", "x"}}); }, {p, "extra metadata key is empty"});
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_), {}), 0);
}

TEST_F(TrainingStateTest, CheckCanSaveProbesThePathWithoutLeavingAFile) {
  nn::check_can_save(path("fine.safetensors"));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_), {}), 0);
  std::string missing = path("no/such/dir/state.safetensors");
  expect_error([&] { nn::check_can_save(missing); }, {"nn::check_can_save", missing, "No such file or directory"});
  expect_error([&] { nn::check_can_save(dir_.string()); }, {dir_.string(), "is a directory"});
  expect_error([] { nn::check_can_save(""); }, {"empty"});
  if (::geteuid() != 0) {  // root writes anywhere
    std::string locked = path("locked");
    std::filesystem::create_directory(locked);
    std::filesystem::permissions(locked, std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec);
    expect_error([&] { nn::check_can_save(locked + "/state.safetensors"); }, {locked, "Permission denied"});
    std::filesystem::permissions(locked, std::filesystem::perms::owner_all);
  }
}
