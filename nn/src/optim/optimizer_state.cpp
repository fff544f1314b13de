// Optimizer::state_dict and load_state_dict: the layout shared by every optimizer, checked in full before any
// of it is installed.
#include <cmath>
#include <set>

#include "braid/optim/optimizer.h"
#include "optim_util.h"

namespace braid::optim {

namespace {

int64_t step_count_of(const Tensor& t) {
  switch (t.dtype()) {
    case DType::Int64:
      return t.item<int64_t>();
    case DType::Float32:
    case DType::Float64: {
      double v = ops::to_dtype(t, DType::Float64).item<double>();
      return std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 0x1p62 ? int64_t(v) : -1;
    }
  }
  return -1;
}

}  // namespace

OptimizerState Optimizer::state_dict() const {
  OptimizerState out;
  ParamGroupState group{hyper_parameters(), {}};
  for (size_t i = 0; i < params_.size(); ++i) {
    group.params.push_back(int64_t(i));
    auto state = param_state(i);
    if (!state.empty()) out.state[int64_t(i)] = std::move(state);
  }
  out.param_groups.push_back(std::move(group));
  return out;
}

void Optimizer::check_state_dict(const OptimizerState& s) const {
  const std::string op = std::string(name()) + "::load_state_dict";
  BRAID_CHECK(s.param_groups.size() == 1, op, ": the state has ", s.param_groups.size(),
              " parameter groups, this optimizer has 1");
  const ParamGroupState& group = s.param_groups[0];
  BRAID_CHECK(group.params.size() == params_.size(), op, ": the state's parameter group holds ", group.params.size(),
              " parameters, this optimizer's holds ", params_.size());
  for (size_t i = 0; i < group.params.size(); ++i)
    BRAID_CHECK(group.params[i] == int64_t(i), op, ": the state's parameter group lists parameter ", group.params[i],
                " at position ", i, ", expected ", i, " (parameters are numbered in order)");
  std::set<std::string> want, got;
  for (const auto& [k, _] : hyper_parameters()) want.insert(k);
  for (const auto& [k, _] : group.options) got.insert(k);
  BRAID_CHECK(want == got, op, ": the state's hyper-parameters do not fit this ", name(), ": ",
              detail::name_mismatch(want, got));
  check_hyper_parameters(group.options);
  for (const auto& [index, state] : s.state) {
    BRAID_CHECK(index >= 0 && index < int64_t(params_.size()), op, ": the state has an entry for parameter ", index,
                " but the optimizer has ", params_.size(), " parameters");
    check_param_state(index, state);
  }
}

void Optimizer::check_param_state(int64_t index, const std::map<std::string, Tensor>& state) const {
  if (state.empty()) return;
  const std::string op = std::string(name()) + "::load_state_dict: parameter " + std::to_string(index);
  const Tensor& p = params_[size_t(index)];
  std::set<std::string> want, got;
  for (const StateEntry& e : state_entries()) want.insert(e.name);
  for (const auto& [k, _] : state) got.insert(k);
  BRAID_CHECK(want == got, op, ": its state does not fit this ", name(), ": ", detail::name_mismatch(want, got));
  for (const StateEntry& e : state_entries()) {
    const Tensor& t = state.at(e.name);
    BRAID_CHECK(t.defined(), op, ": '", e.name, "' is undefined");
    switch (e.kind) {
      case StateKind::LikeParam:
        BRAID_CHECK(t.shape() == p.shape(), op, ": '", e.name, "' has shape ", shape_str(t.shape()),
                    " but the parameter has shape ", shape_str(p.shape()));
        BRAID_CHECK(t.dtype() == p.dtype(), op, ": '", e.name, "' is ", t.dtype(), " but the parameter is ", p.dtype());
        break;
      case StateKind::StepCount:
        BRAID_CHECK(t.numel() == 1, op, ": '", e.name, "' must hold one step count, it has shape ",
                    shape_str(t.shape()));
        BRAID_CHECK(step_count_of(t) >= 0, op, ": '", e.name, "' must be a whole number >= 0 (int64 or float), got ",
                    t.dtype(), " ", t.to_string());
        break;
    }
  }
}

void Optimizer::load_state_dict(const OptimizerState& s) {
  check_state_dict(s);
  NoGradGuard guard;
  // Every copy is made before anything is installed, so a failing copy leaves the optimizer as it was.
  std::vector<std::map<std::string, Tensor>> fresh(params_.size());
  for (const auto& [index, state] : s.state) {
    const Tensor& p = params_[size_t(index)];
    for (const StateEntry& e : state_entries()) {
      if (state.empty()) break;
      const Tensor& t = state.at(e.name);
      Tensor copy;
      switch (e.kind) {
        case StateKind::LikeParam:
          copy = ops::to_device(t, p.device());
          if (copy.same(t)) copy = ops::clone(t);
          break;
        case StateKind::StepCount:
          copy = scalar_tensor(double(step_count_of(t)), DType::Int64);
          break;
      }
      fresh[size_t(index)][e.name] = ops::contiguous(copy);
    }
  }
  set_hyper_parameters(s.param_groups[0].options);
  for (size_t i = 0; i < params_.size(); ++i) set_param_state(i, std::move(fresh[i]));
}

}  // namespace braid::optim
