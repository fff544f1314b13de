#include "braid/optim/sgd.h"

#include "optim_util.h"

namespace braid::optim {

namespace {
std::map<std::string, double> options_map(const SGDOptions& o) {
  return {{"lr", o.lr},
          {"momentum", o.momentum},
          {"dampening", o.dampening},
          {"weight_decay", o.weight_decay},
          {"nesterov", o.nesterov ? 1.0 : 0.0}};
}

SGDOptions options_from(const std::string& where, const std::map<std::string, double>& h) {
  return {.lr = h.at("lr"),
          .momentum = h.at("momentum"),
          .dampening = h.at("dampening"),
          .weight_decay = h.at("weight_decay"),
          .nesterov = detail::flag_from(where, "nesterov", h.at("nesterov"))};
}
}  // namespace

SGD::SGD(std::vector<Tensor> params, SGDOptions o) : SGD(one_group(std::move(params)), o) {}

SGD::SGD(std::vector<ParamGroup> groups, SGDOptions o) : options_(o) {
  init_groups(std::move(groups), options_map(o));
  buffers_.resize(params_.size());
}

void SGD::step() {
  NoGradGuard guard;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const SGDOptions o = options_from(name(), groups_[g].options);
    for (size_t i = group_begin(g); i < group_begin(g + 1); ++i) {
      Tensor grad = detail::usable_grad(params_[i]);
      if (!grad.defined()) continue;
      bool first = !buffers_[i].defined();
      if (o.momentum != 0 && first) buffers_[i] = empty_like(params_[i]);
      ops::sgd_update_(params_[i], grad, buffers_[i],
                       {o.lr, o.momentum, o.dampening, o.weight_decay, o.nesterov, first});
    }
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

void SGD::check_hyper_parameters(const std::string& where, const std::map<std::string, double>& h) const {
  detail::check_lr(where, h.at("lr"));
  const SGDOptions o = options_from(where, h);
  BRAID_CHECK(o.momentum >= 0 && std::isfinite(o.momentum), where, ": momentum must be finite and >= 0, got ",
              o.momentum);
  BRAID_CHECK(std::isfinite(o.dampening), where, ": dampening must be finite, got ", o.dampening);
  BRAID_CHECK(o.weight_decay >= 0 && std::isfinite(o.weight_decay), where,
              ": weight_decay must be finite and >= 0, got ", o.weight_decay);
  BRAID_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0), where,
              ": Nesterov momentum (nesterov) needs momentum > 0 and dampening = 0, got momentum ", o.momentum,
              ", dampening ", o.dampening);
}

}  // namespace braid::optim
