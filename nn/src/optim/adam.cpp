#include "braid/optim/adam.h"

#include <algorithm>

#include "optim_util.h"

namespace braid::optim {

namespace {
void check_options(const char* name, const AdamOptions& o) {
  BRAID_CHECK(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1, name, ": betas must be in [0, 1), got (",
              o.beta1, ", ", o.beta2, ")");
  BRAID_CHECK(o.eps >= 0 && std::isfinite(o.eps), name, ": eps must be finite and >= 0, got ", o.eps);
  BRAID_CHECK(o.weight_decay >= 0 && std::isfinite(o.weight_decay), name,
              ": weight_decay must be finite and >= 0, got ", o.weight_decay);
}

AdamOptions options_from(const std::map<std::string, double>& h) {
  return {.lr = h.at("lr"),
          .beta1 = h.at("beta1"),
          .beta2 = h.at("beta2"),
          .eps = h.at("eps"),
          .weight_decay = h.at("weight_decay")};
}
}  // namespace

Adam::Adam(std::vector<Tensor> params, AdamOptions o) : Adam(std::move(params), o, false) {}

Adam::Adam(std::vector<Tensor> params, AdamOptions o, bool decoupled)
    : Optimizer(std::move(params), o.lr), options_(o), decoupled_(decoupled) {
  check_options(name(), o);
  exp_avg_.resize(params_.size());
  exp_avg_sq_.resize(params_.size());
  param_steps_.resize(params_.size(), 0);
}

void Adam::step() {
  NoGradGuard guard;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor g = detail::usable_grad(params_[i]);
    if (!g.defined()) continue;
    if (!exp_avg_[i].defined()) {
      exp_avg_[i] = zeros_like(params_[i]);
      exp_avg_sq_[i] = zeros_like(params_[i]);
    }
    ops::adam_update_(
        params_[i], g, exp_avg_[i], exp_avg_sq_[i],
        {lr_, options_.beta1, options_.beta2, options_.eps, options_.weight_decay, ++param_steps_[i], decoupled_});
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

std::map<std::string, double> Adam::hyper_parameters() const {
  return {{"lr", lr_},
          {"beta1", options_.beta1},
          {"beta2", options_.beta2},
          {"eps", options_.eps},
          {"weight_decay", options_.weight_decay}};
}

void Adam::check_hyper_parameters(const std::map<std::string, double>& h) const {
  detail::check_lr(name(), h.at("lr"));
  check_options(name(), options_from(h));
}

void Adam::set_hyper_parameters(const std::map<std::string, double>& h) {
  options_ = options_from(h);
  set_lr(options_.lr);
}

}  // namespace braid::optim
