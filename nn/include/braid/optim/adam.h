// Adam (L2 weight decay through the gradient) and AdamW (decoupled weight decay), following torch.optim's
// documented updates with bias correction. Per-group options: "lr", "beta1", "beta2", "eps", "weight_decay".
#pragma once

#include "braid/optim/optimizer.h"

namespace braid::optim {

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;
};

class Adam : public Optimizer {
 public:
  Adam(std::vector<Tensor> params, AdamOptions options = {});
  // `defaults` fill what a group's options leave out.
  Adam(std::vector<ParamGroup> groups, AdamOptions defaults = {});
  void step() override;
  const char* name() const override { return decoupled_ ? "AdamW" : "Adam"; }
  // The constructor's defaults; param_groups() holds the options in use (after schedules and loads).
  const AdamOptions& options() const { return options_; }
  // The most steps any parameter has taken (each parameter counts its own, as in torch.optim).
  int64_t step_count() const;

 protected:
  Adam(std::vector<ParamGroup> groups, AdamOptions defaults, bool decoupled);
  std::vector<StateEntry> state_entries() const override;
  std::map<std::string, Tensor> param_state(size_t i) const override;
  void set_param_state(size_t i, std::map<std::string, Tensor> state) override;
  void check_hyper_parameters(const std::string& where, const std::map<std::string, double>& options) const override;

 private:
  AdamOptions options_;
  bool decoupled_;
  std::vector<Tensor> exp_avg_, exp_avg_sq_;
  // Per parameter, as torch.optim: a parameter's bias correction counts only the steps it took part in.
  std::vector<int64_t> param_steps_;
};

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
};

class AdamW : public Adam {
 public:
  AdamW(std::vector<Tensor> params, AdamWOptions o = {}) : AdamW(one_group(std::move(params)), o) {}
  AdamW(std::vector<ParamGroup> groups, AdamWOptions o = {})
      : Adam(std::move(groups), AdamOptions{o.lr, o.beta1, o.beta2, o.eps, o.weight_decay}, true) {}
};

}  // namespace braid::optim
