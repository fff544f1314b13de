// Optimizer: the base of SGD, Adam and AdamW. It holds the parameters and the learning rate (which schedulers
// change) and updates parameters in place, without recording a graph, from their accumulated .grad.
// Its state_dict has the shape of torch.optim's: per-parameter state keyed by the parameter's index, and per
// parameter group the hyper-parameters and the indices of the group's parameters. There is one group today;
// indices already count over all parameters (as PyTorch numbers them across groups), so groups can be added
// without changing the layout.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "braid/core/core.h"
#include "braid/nn/autograd.h"

namespace braid::optim {

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
  Optimizer(std::vector<Tensor> params, double lr);
  virtual ~Optimizer() = default;
  virtual void step() = 0;
  // "SGD", "Adam", "AdamW": what a checkpoint records to refuse another optimizer's state.
  virtual const char* name() const = 0;
  // Clears the parameters' gradients (to undefined by default, as PyTorch 2 does).
  void zero_grad(bool set_to_none = true);
  double lr() const { return lr_; }
  void set_lr(double lr);
  const std::vector<Tensor>& params() const { return params_; }

  // As PyTorch's, the buffers are shared with the optimizer, not copied (a step changes them); step counts are
  // fresh int64 0-d CPU tensors.
  OptimizerState state_dict() const;
  // Replaces the per-parameter state and the hyper-parameters (lr included) with copies of `state`'s, on the
  // parameters' devices. Throws braid::Error naming what does not fit (group or parameter count, a state name,
  // a shape, a dtype, a hyper-parameter) before changing anything.
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
  // The names a parameter's state holds once it has any.
  virtual std::vector<StateEntry> state_entries() const = 0;
  // Parameter i's state in the layout of state_entries (empty when it has none yet).
  virtual std::map<std::string, Tensor> param_state(size_t i) const = 0;
  // Installs checked state, tensors already on the parameter's device and owned by the optimizer (empty: none).
  virtual void set_param_state(size_t i, std::map<std::string, Tensor> state) = 0;
  // The group's hyper-parameters, "lr" included.
  virtual std::map<std::string, double> hyper_parameters() const = 0;
  // Throws as the constructor does for invalid values; the names are already known to match.
  virtual void check_hyper_parameters(const std::map<std::string, double>& options) const = 0;
  virtual void set_hyper_parameters(const std::map<std::string, double>& options) = 0;

  std::vector<Tensor> params_;
  double lr_;

 private:
  void check_param_state(int64_t index, const std::map<std::string, Tensor>& state) const;
};

}  // namespace braid::optim
