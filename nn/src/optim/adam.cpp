#include "braid/optim/adam.h"

#include <algorithm>

#include "optim_util.h"

namespace braid::optim {

namespace {
std::map<std::string, double> options_map(const AdamOptions& o) {
  return {{"lr", o.lr}, {"beta1", o.beta1}, {"beta2", o.beta2}, {"eps", o.eps}, {"weight_decay", o.weight_decay}};
}

AdamOptions options_from(const std::map<std::string, double>& h) {
  return {.lr = h.at("lr"),
          .beta1 = h.at("beta1"),
          .beta2 = h.at("beta2"),
          .eps = h.at("eps"),
          .weight_decay = h.at("weight_decay")};
}
}  // namespace

Adam::Adam(std::vector<Tensor> params, AdamOptions o) : Adam(one_group(std::move(params)), o, false) {}

Adam::Adam(std::vector<ParamGroup> groups, AdamOptions o) : Adam(std::move(groups), o, false) {}

Adam::Adam(std::vector<ParamGroup> groups, AdamOptions o, bool decoupled) : options_(o), decoupled_(decoupled) {
  init_groups(std::move(groups), options_map(o));
  exp_avg_.resize(params_.size());
  exp_avg_sq_.resize(params_.size());
  param_steps_.resize(params_.size(), 0);
}

void Adam::step() {
  NoGradGuard guard;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const AdamOptions o = options_from(groups_[g].options);
    for (size_t i = group_begin(g); i < group_begin(g + 1); ++i) {
      Tensor grad = detail::usable_grad(params_[i]);
      if (!grad.defined()) continue;
      if (!exp_avg_[i].defined()) {
        exp_avg_[i] = zeros_like(params_[i]);
        exp_avg_sq_[i] = zeros_like(params_[i]);
      }
      ops::adam_update_(params_[i], grad, exp_avg_[i], exp_avg_sq_[i],
                        {o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, ++param_steps_[i], decoupled_});
    }
  }
}

int64_t Adam::step_count() const {
  return param_steps_.empty() ? 0 : *std::max_element(param_steps_.begin(), param_steps_.end());
}

std::vector<Optimizer::StateEntry> Adam::state_entries() const {
  return {{"exp_avg", StateKind::LikeParam}, {"exp_avg_sq", StateKind::LikeParam}, {"step", StateKind::StepCount}};
}

std::map<std::string, Tensor> Adam::param_state(size_t i) const {
  if (!exp_avg_[i].defined()) return {};
  return {{"exp_avg", exp_avg_[i]},
          {"exp_avg_sq", exp_avg_sq_[i]},
          {"step", scalar_tensor(double(param_steps_[i]), DType::Int64)}};
}

void Adam::set_param_state(size_t i, std::map<std::string, Tensor> state) {
  if (state.empty()) {
    exp_avg_[i] = exp_avg_sq_[i] = Tensor();
    param_steps_[i] = 0;
    return;
  }
  exp_avg_[i] = std::move(state.at("exp_avg"));
  exp_avg_sq_[i] = std::move(state.at("exp_avg_sq"));
  param_steps_[i] = state.at("step").item<int64_t>();
}

void Adam::check_hyper_parameters(const std::string& where, const std::map<std::string, double>& h) const {
  detail::check_lr(where, h.at("lr"));
  const AdamOptions o = options_from(h);
  BRAID_CHECK(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1, where,
              ": betas (beta1, beta2) must be in [0, 1), got (", o.beta1, ", ", o.beta2, ")");
  BRAID_CHECK(o.eps >= 0 && std::isfinite(o.eps), where, ": eps must be finite and >= 0, got ", o.eps);
  BRAID_CHECK(o.weight_decay >= 0 && std::isfinite(o.weight_decay), where,
              ": weight_decay must be finite and >= 0, got ", o.weight_decay);
}

}  // namespace braid::optim
