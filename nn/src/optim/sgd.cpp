#include "braid/optim/sgd.h"

#include "optim_util.h"

namespace braid::optim {

namespace {
void check_options(const SGDOptions& o) {
  BRAID_CHECK(o.momentum >= 0 && std::isfinite(o.momentum), "SGD: momentum must be finite and >= 0, got ", o.momentum);
  BRAID_CHECK(std::isfinite(o.dampening), "SGD: dampening must be finite, got ", o.dampening);
  BRAID_CHECK(o.weight_decay >= 0 && std::isfinite(o.weight_decay), "SGD: weight_decay must be finite and >= 0, got ",
              o.weight_decay);
  BRAID_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0),
              "SGD: Nesterov momentum needs momentum > 0 and dampening = 0");
}

SGDOptions options_from(const std::map<std::string, double>& h) {
  return {.lr = h.at("lr"),
          .momentum = h.at("momentum"),
          .dampening = h.at("dampening"),
          .weight_decay = h.at("weight_decay"),
          .nesterov = detail::flag_from("SGD", "nesterov", h.at("nesterov"))};
}
}  // namespace

SGD::SGD(std::vector<Tensor> params, SGDOptions o) : Optimizer(std::move(params), o.lr), options_(o) {
  check_options(o);
  buffers_.resize(params_.size());
}

void SGD::step() {
  NoGradGuard guard;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor g = detail::usable_grad(params_[i]);
    if (!g.defined()) continue;
    bool first = !buffers_[i].defined();
    if (options_.momentum != 0 && first) buffers_[i] = empty_like(params_[i]);
    ops::sgd_update_(params_[i], g, buffers_[i],
                     {lr_, options_.momentum, options_.dampening, options_.weight_decay, options_.nesterov, first});
  }
}

std::vector<Optimizer::StateEntry> SGD::state_entries() const { return {{"momentum_buffer", StateKind::LikeParam}}; }

std::map<std::string, Tensor> SGD::param_state(size_t i) const {
  if (!buffers_[i].defined()) return {};
  return {{"momentum_buffer", buffers_[i]}};
}

void SGD::set_param_state(size_t i, std::map<std::string, Tensor> state) {
  buffers_[i] = state.empty() ? Tensor() : std::move(state.at("momentum_buffer"));
}

std::map<std::string, double> SGD::hyper_parameters() const {
  return {{"lr", lr_},
          {"momentum", options_.momentum},
          {"dampening", options_.dampening},
          {"weight_decay", options_.weight_decay},
          {"nesterov", options_.nesterov ? 1.0 : 0.0}};
}

void SGD::check_hyper_parameters(const std::map<std::string, double>& h) const {
  detail::check_lr("SGD", h.at("lr"));
  check_options(options_from(h));
}

void SGD::set_hyper_parameters(const std::map<std::string, double>& h) {
  options_ = options_from(h);
  set_lr(options_.lr);
}

}  // namespace braid::optim
