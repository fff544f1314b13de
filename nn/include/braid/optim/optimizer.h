// Optimizer: the base of SGD, Adam and AdamW. It holds the parameters in groups, as torch.optim's param_groups:
// each group has its own hyper-parameters (its options override the optimizer's defaults; "lr" is the one
// schedulers change), and updates parameters in place, without recording a graph, from their accumulated .grad.
// A flat parameter list is one group. Its state_dict has the shape of torch.optim's: per-parameter state keyed by
// the parameter's index, counted over all groups in order, and per group the full hyper-parameters and the
// indices of the group's parameters.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "braid/core/core.h"
#include "braid/nn/autograd.h"

namespace braid::optim {

struct ParamGroup {
  std::vector<Tensor> params;
  // Overrides of the optimizer's defaults by name ("lr", "weight_decay", ...; flags such as "nesterov" as 0 or 1).
  // In param_groups() it holds every option of the group.
  std::map<std::string, double> options;
};

struct ParamGroupState {
  std::map<std::string, double> options;  // "lr" and the optimizer's own hyper-parameters (booleans as 0 or 1)
  std::vector<int64_t> params;            // indices into the optimizer's parameters
};

struct OptimizerState {
  // Parameter index -> its state ("momentum_buffer"; "exp_avg", "exp_avg_sq", "step"). A parameter that has not
  // taken a step has no entry.
  std::map<int64_t, std::map<std::string, Tensor>> state;
  std::vector<ParamGroupState> param_groups;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual void step() = 0;
  // "SGD", "Adam", "AdamW": what a checkpoint records to refuse another optimizer's state.
  virtual const char* name() const = 0;
  // Clears the parameters' gradients (to undefined by default, as PyTorch 2 does).
  void zero_grad(bool set_to_none = true);
  // Group 0's learning rate, and a given group's.
  double lr() const { return lr(0); }
  double lr(size_t group) const;
  // Sets every group's learning rate, or one group's.
  void set_lr(double lr);
  void set_lr(size_t group, double lr);
  // Every parameter, in group order.
  const std::vector<Tensor>& params() const { return params_; }
  // Each group's parameters and its full options.
  const std::vector<ParamGroup>& param_groups() const { return groups_; }

  // As PyTorch's, the buffers are shared with the optimizer, not copied (a step changes them); step counts are
  // fresh int64 0-d CPU tensors.
  OptimizerState state_dict() const;
  // Replaces the per-parameter state and every group's hyper-parameters (lr included) with copies of `state`'s, on
  // the parameters' devices. Throws braid::Error naming what does not fit (group count or sizes, a state name, a
  // shape, a dtype, a hyper-parameter) before changing anything.
  void load_state_dict(const OptimizerState& state);
  // The checks of load_state_dict alone, so a caller loading several objects can check them all first.
  void check_state_dict(const OptimizerState& state) const;

 protected:
  enum class StateKind {
    LikeParam,  // a tensor of the parameter's shape and dtype
    StepCount,  // a count of steps: one integral value >= 0 (PyTorch writes it as a float32 0-d tensor)
  };
  struct StateEntry {
    const char* name;
    StateKind kind;
  };

  Optimizer() = default;
  // For the derived constructor, once name() and the checks below work: each group's options become `defaults`
  // overridden by its own. Throws braid::Error naming the group and the option for an unknown name or an invalid
  // value, and for a parameter that is not a floating-point leaf requiring grad or that appears twice.
  void init_groups(std::vector<ParamGroup> groups, const std::map<std::string, double>& defaults);
  static std::vector<ParamGroup> one_group(std::vector<Tensor> params) { return {ParamGroup{std::move(params), {}}}; }
  // Parameters [group_begin(g), group_begin(g + 1)) of params() make up group g.
  size_t group_begin(size_t group) const { return group_begin_[group]; }

  // The names a parameter's state holds once it has any.
  virtual std::vector<StateEntry> state_entries() const = 0;
  // Parameter i's state in the layout of state_entries (empty when it has none yet).
  virtual std::map<std::string, Tensor> param_state(size_t i) const = 0;
  // Installs checked state, tensors already on the parameter's device and owned by the optimizer (empty: none).
  virtual void set_param_state(size_t i, std::map<std::string, Tensor> state) = 0;
  // Throws, with messages starting with `where`, for invalid values; every name is known to be present.
  virtual void check_hyper_parameters(const std::string& where, const std::map<std::string, double>& options) const = 0;

  std::vector<Tensor> params_;
  std::vector<ParamGroup> groups_;

 private:
  void check_param_state(int64_t index, const std::map<std::string, Tensor>& state) const;
  void check_group_state(size_t g, const ParamGroupState& group) const;
  std::vector<size_t> group_begin_;
};

}  // namespace braid::optim
