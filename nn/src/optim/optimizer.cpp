#include "braid/optim/optimizer.h"

#include <cmath>
#include <map>
#include <string>

#include "braid/nn/parallel_attributes.h"
#include "braid/optim/clip_grad.h"
#include "optim_util.h"

namespace braid::optim {

namespace {
void check_param(const std::string& where, size_t i, const Tensor& p) {
  BRAID_CHECK(p.defined(), where, ": parameter ", i, " is undefined");
  BRAID_CHECK(p.is_leaf() && p.requires_grad(), where, ": parameter ", i, " (", shape_str(p.shape()),
              ") must be a leaf tensor that requires grad");
  BRAID_CHECK(is_floating(p.dtype()), where, ": parameter ", i, " is ", p.dtype(), ", expected floating point");
}

std::string known_names(const std::map<std::string, double>& options) {
  std::string out;
  for (const auto& [k, _] : options) out += (out.empty() ? "'" : ", '") + k + "'";
  return out;
}
}  // namespace

void Optimizer::init_groups(std::vector<ParamGroup> groups, const std::map<std::string, double>& defaults) {
  BRAID_CHECK(!groups.empty(), name(), ": needs at least one parameter group");
  check_hyper_parameters(name(), defaults);
  // Where each parameter first appeared, so a second appearance names both places.
  std::map<const TensorImpl*, std::pair<size_t, size_t>> seen;
  group_begin_ = {0};
  for (size_t g = 0; g < groups.size(); ++g) {
    const std::string where = std::string(name()) + ": parameter group " + std::to_string(g);
    std::map<std::string, double> options = defaults;
    for (const auto& [k, v] : groups[g].options) {
      BRAID_CHECK(defaults.count(k), where, ": unknown option '", k, "' (", name(), " has ", known_names(defaults),
                  ")");
      options[k] = v;
    }
    check_hyper_parameters(where, options);
    groups[g].options = std::move(options);
    for (size_t i = 0; i < groups[g].params.size(); ++i) {
      const Tensor& p = groups[g].params[i];
      check_param(where, i, p);
      auto [it, fresh] = seen.emplace(p.impl(), std::make_pair(g, i));
      BRAID_CHECK(fresh, where, ": parameter ", i, " (", shape_str(p.shape()), ") is already parameter ",
                  it->second.second, " of parameter group ", it->second.first,
                  "; a parameter may appear only once in an optimizer");
      params_.push_back(p);
    }
    group_begin_.push_back(params_.size());
  }
  groups_ = std::move(groups);
}

double Optimizer::lr(size_t group) const {
  BRAID_CHECK(group < groups_.size(), name(), ".lr: parameter group ", group, " does not exist (", groups_.size(),
              " groups)");
  return groups_[group].options.at("lr");
}

void Optimizer::set_lr(double lr) {
  detail::check_lr(name(), lr);
  for (auto& g : groups_) g.options.at("lr") = lr;
}

void Optimizer::set_lr(size_t group, double lr) {
  BRAID_CHECK(group < groups_.size(), name(), ".set_lr: parameter group ", group, " does not exist (", groups_.size(),
              " groups)");
  detail::check_lr(std::string(name()) + ": parameter group " + std::to_string(group), lr);
  groups_[group].options.at("lr") = lr;
}

void Optimizer::zero_grad(bool set_to_none) {
  for (auto& p : params_) {
    if (!p.grad().defined()) continue;
    if (set_to_none)
      p.set_grad(Tensor());
    else
      ops::fill_(p.grad(), 0);
  }
}

double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type) {
  BRAID_CHECK(max_norm >= 0, "clip_grad_norm_: max_norm must be >= 0, got ", max_norm);
  BRAID_CHECK(norm_type > 0, "clip_grad_norm_: norm_type must be positive, got ", norm_type);
  // A shard's gradient is part of a norm that spans ranks: counting it alone would clip by a smaller norm than the
  // unsplit model's, silently.
  for (size_t i = 0; i < params.size(); ++i)
    BRAID_CHECK(!nn::is_sharded(params[i]), "clip_grad_norm_: parameter ", i, " (", shape_str(params[i].shape()),
                ") is a shard of a parameter split across ranks; use dist::clip_grad_norm_, which sums the norm over "
                "the shard's group");
  NoGradGuard guard;
  double total = 0;
  bool inf = std::isinf(norm_type);
  for (const auto& p : params) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    if (inf) {
      total = std::max(total, ops::amax(ops::unary(ops::UnaryOp::Abs, g)).item<double>());
    } else {
      Tensor a = ops::to_dtype(ops::unary(ops::UnaryOp::Abs, g), DType::Float64);
      total += ops::sum(ops::pow_scalar(a, norm_type)).item<double>();
    }
  }
  if (!inf) total = std::pow(total, 1.0 / norm_type);
  double coef = max_norm / (total + 1e-6);
  if (coef < 1)
    for (const auto& p : params)
      if (p.grad().defined()) ops::mul_(p.grad(), coef);
  return total;
}

}  // namespace braid::optim
