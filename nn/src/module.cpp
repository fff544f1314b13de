#include "braid/nn/module.h"

#include <set>

namespace braid::nn {

void Module::check_new_name(const std::string& name) const {
  BRAID_CHECK(!name.empty() && name.find('.') == std::string::npos, type_name_, ": invalid member name '", name,
              "' (must be non-empty and contain no '.')");
  auto taken = [&](const auto& list) {
    for (const auto& [n, _] : list)
      if (n == name) return true;
    return false;
  };
  BRAID_CHECK(!taken(parameters_) && !taken(buffers_) && !taken(children_), type_name_, ": a member named '", name,
              "' is already registered");
}

Tensor Module::register_parameter(const std::string& name, Tensor t, bool requires_grad) {
  check_new_name(name);
  BRAID_CHECK(t.defined(), type_name_, ": parameter '", name, "' is an undefined tensor");
  BRAID_CHECK(t.is_leaf(), type_name_, ": parameter '", name, "' must be a leaf tensor (detach() it first)");
  if (requires_grad) t.requires_grad_(true);
  parameters_.emplace_back(name, t);
  return t;
}

Tensor Module::register_buffer(const std::string& name, Tensor t) {
  check_new_name(name);
  buffers_.emplace_back(name, t);
  return t;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> m) {
  check_new_name(name);
  BRAID_CHECK(m, type_name_, ": submodule '", name, "' is null");
  children_.emplace_back(name, std::move(m));
}

namespace {
using Named = std::vector<std::pair<std::string, Tensor>>;

void collect(const Module& m, const std::string& prefix, bool recurse, bool params, Named& out,
             std::set<const TensorImpl*>& seen,
             const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children, const Named& own) {
  for (const auto& [n, t] : own)
    if (!t.defined() || seen.insert(t.impl()).second) out.emplace_back(prefix + n, t);
  if (!recurse) return;
  for (const auto& [n, c] : children) {
    Named sub = params ? c->named_parameters(true) : c->named_buffers(true);
    for (auto& [sn, t] : sub)
      if (!t.defined() || seen.insert(t.impl()).second) out.emplace_back(prefix + n + "." + sn, t);
  }
  (void)m;
}
}  // namespace

std::vector<std::pair<std::string, Tensor>> Module::named_parameters(bool recurse) const {
  Named out;
  std::set<const TensorImpl*> seen;
  collect(*this, "", recurse, true, out, seen, children_, parameters_);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers(bool recurse) const {
  Named out;
  std::set<const TensorImpl*> seen;
  collect(*this, "", recurse, false, out, seen, children_, buffers_);
  return out;
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [_, t] : named_parameters(recurse)) out.push_back(t);
  return out;
}

std::vector<Tensor> Module::buffers(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [_, t] : named_buffers(recurse)) out.push_back(t);
  return out;
}

namespace {
using NamedModules = std::vector<std::pair<std::string, std::shared_ptr<Module>>>;

// The module itself, owned when a shared_ptr holds it, else a non-owning pointer (a model on the stack).
std::shared_ptr<Module> self_pointer(Module& m) {
  if (auto owned = m.weak_from_this().lock()) return owned;
  return std::shared_ptr<Module>(std::shared_ptr<Module>(), &m);
}

void collect_modules(const std::shared_ptr<Module>& m, const std::string& name, NamedModules& out,
                     std::set<const Module*>& seen) {
  if (!seen.insert(m.get()).second) return;
  out.emplace_back(name, m);
  for (const auto& [n, c] : m->named_children()) collect_modules(c, name.empty() ? n : name + "." + n, out, seen);
}

void apply_children_first(Module& m, const std::function<void(Module&)>& fn, std::set<const Module*>& seen) {
  if (!seen.insert(&m).second) return;
  for (const auto& [_, c] : m.named_children()) apply_children_first(*c, fn, seen);
  fn(m);
}
}  // namespace

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_modules() {
  NamedModules out;
  std::set<const Module*> seen;
  collect_modules(self_pointer(*this), "", out, seen);
  return out;
}

std::vector<std::shared_ptr<Module>> Module::modules() {
  std::vector<std::shared_ptr<Module>> out;
  for (auto& [_, m] : named_modules()) out.push_back(m);
  return out;
}

Module& Module::apply(const std::function<void(Module&)>& fn) {
  BRAID_CHECK(fn, type_name_, ".apply: the function is empty");
  std::set<const Module*> seen;
  apply_children_first(*this, fn, seen);
  return *this;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [_, c] : children_) c->train(on);
}

void Module::to(Device device) {
  NoGradGuard guard;
  for (auto& t : parameters()) {
    t.set_data(ops::to_device(t, device));
    if (t.grad().defined()) t.set_grad(ops::to_device(t.grad(), device));
  }
  for (auto& t : buffers())
    if (t.defined()) t.set_data(ops::to_device(t, device));
}

void Module::to(DType dtype) {
  NoGradGuard guard;
  for (auto& t : parameters()) {
    BRAID_CHECK(is_floating(dtype), type_name_, ".to: parameters must stay floating-point, asked for ", dtype);
    if (t.grad().defined()) t.set_grad(Tensor());
    t.set_data(ops::to_dtype(t, dtype));
  }
  for (auto& t : buffers())
    if (t.defined() && is_floating(t.dtype())) t.set_data(ops::to_dtype(t, dtype));
}

void Module::zero_grad(bool set_to_none) {
  for (auto& t : parameters()) {
    if (!t.grad().defined()) continue;
    if (set_to_none) t.set_grad(Tensor());
    else ops::fill_(t.grad(), 0);
  }
}

StateDict Module::state_dict() const {
  StateDict d;
  auto add = [&d](const std::string& n, const Tensor& t) {
    d[n] = t.detach();
    copy_parallel_attributes(d[n], t);
  };
  for (auto& [n, t] : named_parameters()) add(n, t);
  for (auto& [n, t] : named_buffers())
    if (t.defined()) add(n, t);
  return d;
}

void Module::load_state_dict(const StateDict& dict, bool strict) {
  NoGradGuard guard;
  std::set<std::string> used;
  auto load_into = [&](const std::string& n, const Tensor& t) {
    auto it = dict.find(n);
    if (it == dict.end()) {
      BRAID_CHECK(!strict, type_name_, ".load_state_dict: missing key '", n, "'");
      return;
    }
    const Tensor& src = it->second;
    BRAID_CHECK(src.shape() == t.shape(), type_name_, ".load_state_dict: '", n, "' has shape ",
                shape_str(src.shape()), " in the state dict but ", shape_str(t.shape()), " in the model");
    BRAID_CHECK(src.dtype() == t.dtype(), type_name_, ".load_state_dict: '", n, "' is ", src.dtype(),
                " in the state dict but ", t.dtype(), " in the model");
    used.insert(n);
  };
  auto params = named_parameters();
  auto bufs = named_buffers();
  // Validate everything before copying anything, so a bad dict leaves the model untouched.
  for (auto& [n, t] : params) load_into(n, t);
  for (auto& [n, t] : bufs)
    if (t.defined()) load_into(n, t);
  if (strict) {
    for (auto& [n, _] : dict)
      BRAID_CHECK(used.count(n), type_name_, ".load_state_dict: unexpected key '", n, "'");
  }
  for (auto& [n, t] : params)
    if (used.count(n)) ops::copy_(t, ops::to_device(dict.at(n), t.device()));
  for (auto& [n, t] : bufs)
    if (t.defined() && used.count(n)) ops::copy_(t, ops::to_device(dict.at(n), t.device()));
}

}  // namespace braid::nn
