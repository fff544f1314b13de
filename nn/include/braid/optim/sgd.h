// Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight decay, following
// torch.optim.SGD's documented update. Per-group options: "lr", "momentum", "dampening", "weight_decay",
// "nesterov" (0 or 1).
#pragma once

#include "braid/optim/optimizer.h"

namespace braid::optim {

struct SGDOptions {
  double lr = 0.01;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, SGDOptions options = {});
  // `defaults` fill what a group's options leave out.
  SGD(std::vector<ParamGroup> groups, SGDOptions defaults = {});
  void step() override;
  const char* name() const override { return "SGD"; }
  // The constructor's defaults; param_groups() holds the options in use (after schedules and loads).
  const SGDOptions& options() const { return options_; }
  // The momentum buffer of parameter i (undefined before the first step or without momentum).
  const Tensor& momentum_buffer(size_t i) const { return buffers_.at(i); }

 protected:
  std::vector<StateEntry> state_entries() const override;
  std::map<std::string, Tensor> param_state(size_t i) const override;
  void set_param_state(size_t i, std::map<std::string, Tensor> state) override;
  void check_hyper_parameters(const std::string& where, const std::map<std::string, double>& options) const override;

 private:
  SGDOptions options_;
  std::vector<Tensor> buffers_;
};

}  // namespace braid::optim
