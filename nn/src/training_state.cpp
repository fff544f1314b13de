// save_training_state / load_training_state: the model, the optimizer and the LR schedule in one .safetensors
// file (layout in checkpoint.h). Scalars live in the metadata as JSON, which every safetensors reader returns.
#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "braid/core/ops.h"
#include "braid/nn/checkpoint.h"
#include "braid/optim/lr_scheduler.h"
#include "braid/optim/optimizer.h"

namespace braid::nn {

namespace {

using nlohmann::json;

constexpr const char* version_key = "braid.training_state";
constexpr const char* version = "1";
constexpr const char* optimizer_key = "optimizer";
constexpr const char* groups_key = "optimizer.param_groups";
constexpr const char* scheduler_key = "scheduler";
constexpr const char* scheduler_state_key = "scheduler.state";
const std::string model_prefix = "model.";
const std::string state_prefix = "optimizer.state.";
const std::string extra_prefix = "extra.";
constexpr const char* checksum_key = "braid.checksum";
constexpr const char* checksum_kind = "crc32:";

// The checksum a file with these tensors and metadata records: every metadata entry but the checksum itself, then
// the tensors.
std::string file_checksum(const StateDict& tensors, const Metadata& md) {
  uint32_t crc = 0;
  for (const auto& [k, v] : md) {
    if (k == checksum_key) continue;
    for (const std::string* s : {&k, &v}) {
      uint64_t n = s->size();
      crc = uint32_t(::crc32(crc, reinterpret_cast<const Bytef*>(&n), sizeof n));
      crc = uint32_t(::crc32(crc, reinterpret_cast<const Bytef*>(s->data()), uInt(s->size())));
    }
  }
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08x", unsigned(checksum(tensors, crc)));
  return std::string(checksum_kind) + hex;
}

// A file whose bytes changed after it was written (a bad disk, a copy cut short and padded, an edit) no longer
// matches its checksum. Files written before checksums existed have none and are read as they are.
void check_checksum(const StateDict& tensors, const Metadata& md) {
  auto recorded = md.find(checksum_key);
  if (recorded == md.end()) return;
  std::string actual = file_checksum(tensors, md);
  BRAID_CHECK(recorded->second == actual, "the file is corrupt: its contents have checksum ", actual,
              " but it records ", checksum_key, " ", recorded->second,
              " (the save completed, so the file changed since)");
}

json numbers_json(const std::map<std::string, double>& values, const char* what) {
  json out = json::object();
  for (const auto& [k, v] : values) {
    BRAID_CHECK(std::isfinite(v), what, " '", k, "' is ", v, ", which JSON cannot hold");
    out[k] = v;
  }
  return out;
}

Metadata training_metadata(const optim::OptimizerState& os, const optim::Optimizer& optimizer,
                           const optim::LRScheduler* scheduler, const Metadata& extra) {
  Metadata md{{version_key, version}, {optimizer_key, optimizer.name()}};
  json groups = json::array();
  for (const auto& g : os.param_groups) {
    json group = numbers_json(g.options, "hyper-parameter");
    group["params"] = g.params;
    groups.push_back(std::move(group));
  }
  md[groups_key] = groups.dump();
  if (scheduler) {
    optim::LRSchedulerState ss = scheduler->state_dict();
    json state = numbers_json(ss.options, "schedule option");
    state["last_epoch"] = ss.last_epoch;
    state["base_lrs"] = ss.base_lrs;
    md[scheduler_key] = scheduler->name();
    md[scheduler_state_key] = state.dump();
  }
  for (const auto& [k, v] : extra) {
    BRAID_CHECK(!k.empty(), "an extra metadata key is empty");
    md[extra_prefix + k] = v;
  }
  return md;
}

void save_state(const std::string& path, const Module& model, const optim::Optimizer& optimizer,
                const optim::LRScheduler* scheduler, const Metadata& extra) {
  // On the CPU and contiguous once, for the checksum and the file alike.
  auto host = [](const Tensor& t) {
    return ops::contiguous(t.device().is_cpu() ? t : ops::to_device(t, Device::cpu()));
  };
  StateDict tensors;
  for (const auto& [name, t] : model.state_dict()) tensors[model_prefix + name] = host(t);
  optim::OptimizerState os = optimizer.state_dict();
  for (const auto& [index, state] : os.state)
    for (const auto& [name, t] : state) tensors[state_prefix + std::to_string(index) + "." + name] = host(t);
  Metadata md;
  try {
    md = training_metadata(os, optimizer, scheduler, extra);
  } catch (const Error& e) {
    BRAID_FAIL("nn::save_training_state: '", path, "': ", e.what());
  }
  md[checksum_key] = file_checksum(tensors, md);
  save(tensors, path, md);
}

const std::string& required(const Metadata& md, const char* key) {
  auto it = md.find(key);
  BRAID_CHECK(it != md.end(), "its metadata has no '", key, "'");
  return it->second;
}

json parse_json(const Metadata& md, const char* key) {
  try {
    return json::parse(required(md, key));
  } catch (const json::exception& e) {
    BRAID_FAIL("metadata '", key, "' is not valid JSON: ", e.what());
  }
}

// A metadata value for an error message: arrays and objects by their type only, since dump() recurses once per
// nesting level and a deeply nested value in a corrupt file would overflow the stack.
std::string shown(const json& v) { return v.is_structured() ? std::string(v.type_name()) : v.dump(); }

// The numbers of a JSON object, but for the keys in `skip`.
std::map<std::string, double> numbers_of(const json& object, const char* key, std::initializer_list<const char*> skip) {
  std::map<std::string, double> out;
  for (const auto& [k, v] : object.items()) {
    // Captured by an init-capture: clang before 16 cannot capture a structured binding.
    if (std::find_if(skip.begin(), skip.end(), [&k = k](const char* s) { return k == s; }) != skip.end()) continue;
    BRAID_CHECK(v.is_number(), "metadata '", key, "': '", k, "' is ", shown(v), ", expected a number");
    out[k] = v.get<double>();
  }
  return out;
}

optim::OptimizerState optimizer_state(const Metadata& md, StateDict& optimizer_tensors) {
  optim::OptimizerState os;
  json groups = parse_json(md, groups_key);
  BRAID_CHECK(groups.is_array(), "metadata '", groups_key, "' is not a JSON array of parameter groups");
  for (const json& g : groups) {
    BRAID_CHECK(g.is_object(), "metadata '", groups_key, "' holds ", shown(g), ", expected an object");
    auto params = g.find("params");
    BRAID_CHECK(params != g.end() && params->is_array(), "metadata '", groups_key, "': a group has no 'params' list");
    optim::ParamGroupState group{numbers_of(g, groups_key, {"params"}), {}};
    for (const json& p : *params) {
      BRAID_CHECK(p.is_number_integer(), "metadata '", groups_key, "': parameter index ", shown(p),
                  " is not an integer");
      group.params.push_back(p.get<int64_t>());
    }
    os.param_groups.push_back(std::move(group));
  }
  for (auto& [name, t] : optimizer_tensors) {
    std::string rest = name.substr(state_prefix.size());
    size_t dot = rest.find('.');
    int64_t index = -1;
    auto [end, ec] = std::from_chars(rest.data(), rest.data() + std::min(dot, rest.size()), index);
    BRAID_CHECK(
        dot != std::string::npos && dot > 0 && dot + 1 < rest.size() && ec == std::errc() && end == rest.data() + dot,
        "tensor '", name, "' is not named ", state_prefix, "<parameter index>.<state name>");
    os.state[index][rest.substr(dot + 1)] = t;
  }
  return os;
}

optim::LRSchedulerState scheduler_state(const Metadata& md) {
  json j = parse_json(md, scheduler_state_key);
  BRAID_CHECK(j.is_object(), "metadata '", scheduler_state_key, "' is not a JSON object");
  auto epoch = j.find("last_epoch");
  BRAID_CHECK(epoch != j.end() && epoch->is_number_integer(), "metadata '", scheduler_state_key,
              "' has no integer 'last_epoch'");
  auto base_lrs = j.find("base_lrs");
  BRAID_CHECK(base_lrs != j.end() && base_lrs->is_array(), "metadata '", scheduler_state_key,
              "' has no 'base_lrs' list");
  optim::LRSchedulerState ss{epoch->get<int64_t>(), {}, numbers_of(j, scheduler_state_key, {"last_epoch", "base_lrs"})};
  for (const json& lr : *base_lrs) {
    BRAID_CHECK(lr.is_number(), "metadata '", scheduler_state_key, "': base lr ", shown(lr), " is not a number");
    ss.base_lrs.push_back(lr.get<double>());
  }
  return ss;
}

void check_kinds(const Metadata& md, const optim::Optimizer& optimizer, const optim::LRScheduler* scheduler) {
  auto v = md.find(version_key);
  BRAID_CHECK(v != md.end(), "not a training-state file: its metadata has no '", version_key,
              "' (a model checkpoint? nn::load reads those)");
  BRAID_CHECK(v->second == version, "training-state layout version '", v->second, "', this Braid reads '", version,
              "'");
  const std::string& kind = required(md, optimizer_key);
  BRAID_CHECK(kind == optimizer.name(), "it holds the state of optimizer ", kind, ", not of ", optimizer.name());
  auto s = md.find(scheduler_key);
  BRAID_CHECK(s != md.end() || !scheduler, "it holds no LR schedule, but ", scheduler ? scheduler->name() : "",
              " was given to restore");
  BRAID_CHECK(s == md.end() || scheduler, "it holds LR schedule ", s == md.end() ? "" : s->second,
              ", but no scheduler was given to restore it into");
  if (scheduler)
    BRAID_CHECK(s->second == scheduler->name(), "it holds the state of LR schedule ", s->second, ", not of ",
                scheduler->name());
}

Metadata load_state(const std::string& path, Module& model, optim::Optimizer& optimizer,
                    optim::LRScheduler* scheduler) {
  Metadata md;
  StateDict tensors = load(path, md);
  try {
    check_checksum(tensors, md);
    check_kinds(md, optimizer, scheduler);
    StateDict model_tensors, optimizer_tensors;
    for (auto& [name, t] : tensors) {
      if (name.starts_with(model_prefix))
        model_tensors[name.substr(model_prefix.size())] = t;
      else if (name.starts_with(state_prefix))
        optimizer_tensors[name] = t;
      else
        BRAID_FAIL("unexpected tensor '", name, "' (expected ", model_prefix, "* or ", state_prefix, "*)");
    }
    optim::OptimizerState os = optimizer_state(md, optimizer_tensors);
    optim::LRSchedulerState ss = scheduler ? scheduler_state(md) : optim::LRSchedulerState{};
    optimizer.check_state_dict(os);
    if (scheduler) scheduler->check_state_dict(ss);
    // Checks every name, shape and dtype before it copies, so it changes nothing when it throws.
    model.load_state_dict(model_tensors, /*strict=*/true);
    optimizer.load_state_dict(os);
    if (scheduler) scheduler->load_state_dict(ss);
  } catch (const Error& e) {
    BRAID_FAIL("nn::load_training_state: '", path, "': ", e.what());
  }
  Metadata extra;
  for (const auto& [k, v] : md)
    if (k.starts_with(extra_prefix)) extra[k.substr(extra_prefix.size())] = v;
  return extra;
}

}  // namespace

void save_training_state(const std::string& path, const Module& model, const optim::Optimizer& optimizer,
                         const optim::LRScheduler& scheduler, const Metadata& extra) {
  save_state(path, model, optimizer, &scheduler, extra);
}

void save_training_state(const std::string& path, const Module& model, const optim::Optimizer& optimizer,
                         const Metadata& extra) {
  save_state(path, model, optimizer, nullptr, extra);
}

Metadata load_training_state(const std::string& path, Module& model, optim::Optimizer& optimizer,
                             optim::LRScheduler& scheduler) {
  return load_state(path, model, optimizer, &scheduler);
}

Metadata load_training_state(const std::string& path, Module& model, optim::Optimizer& optimizer) {
  return load_state(path, model, optimizer, nullptr);
}

}  // namespace braid::nn
