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
  for (size_t g = 0; g < groups_.size(); ++g) {
    ParamGroupState group{groups_[g].options, {}};
    for (size_t i = group_begin(g); i < group_begin(g + 1); ++i) group.params.push_back(int64_t(i));
    out.param_groups.push_back(std::move(group));
  }
  for (size_t i = 0; i < params_.size(); ++i) {
    auto state = param_state(i);
    if (!state.empty()) out.state[int64_t(i)] = std::move(state);
  }
  return out;
}

void Optimizer::check_state_dict(const OptimizerState& s) const {
  const std::string op = std::string(name()) + "::load_state_dict";
  BRAID_CHECK(s.param_groups.size() == groups_.size(), op, ": the state has ", s.param_groups.size(),
              " parameter groups, this optimizer has ", groups_.size());
  for (size_t g = 0; g < groups_.size(); ++g) check_group_state(g, s.param_groups[g]);
  for (const auto& [index, state] : s.state) {
    BRAID_CHECK(index >= 0 && index < int64_t(params_.size()), op, ": the state has an entry for parameter ", index,
                " but the optimizer has ", params_.size(), " parameters");
    check_param_state(index, state);
  }
}

void Optimizer::check_group_state(size_t g, const ParamGroupState& group) const {
  const std::string op = std::string(name()) + "::load_state_dict: parameter group " + std::to_string(g);
  const size_t begin = group_begin(g), size = group_begin(g + 1) - begin;
  BRAID_CHECK(group.params.size() == size, op, ": the state's group holds ", group.params.size(),
              " parameters, this optimizer's holds ", size);
  for (size_t i = 0; i < size; ++i)
    BRAID_CHECK(group.params[i] == int64_t(begin + i), op, ": the state's group lists parameter ", group.params[i],
                " at position ", i, ", expected ", begin + i, " (parameters are numbered in order over the groups)");
  std::set<std::string> want, got;
  for (const auto& [k, _] : groups_[g].options) want.insert(k);
  for (const auto& [k, _] : group.options) got.insert(k);
  BRAID_CHECK(want == got, op, ": the state's hyper-parameters do not fit this ", name(), ": ",
              detail::name_mismatch(want, got));
  check_hyper_parameters(op, group.options);
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
  for (size_t g = 0; g < groups_.size(); ++g) groups_[g].options = s.param_groups[g].options;
  for (size_t i = 0; i < params_.size(); ++i) set_param_state(i, std::move(fresh[i]));
}

}  // namespace braid::optim
