// Learning-rate schedules: call step() once per epoch (WarmupCosineLR: once per optimizer step), after the
// optimizer's steps, as in PyTorch. Each schedule scales every parameter group's own base lr (the group's lr when
// the schedule was made), as PyTorch's base_lrs. The state_dict holds what torch.optim.lr_scheduler's does: the epoch
// count, the base learning rate of each parameter group and the schedule's own settings (loading replaces those given
// to the constructor). As in PyTorch, loading a schedule's state leaves the optimizer's lr alone: the optimizer's own
// state restores it.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "braid/optim/optimizer.h"

namespace braid::optim {

struct LRSchedulerState {
  int64_t last_epoch = 0;
  std::vector<double> base_lrs;  // one per parameter group
  // StepLR: step_size, gamma; CosineAnnealingLR: T_max, eta_min; WarmupCosineLR: warmup_steps, total_steps, min_lr
  std::map<std::string, double> options;
};

class LRScheduler {
 public:
  explicit LRScheduler(Optimizer& optimizer);
  virtual ~LRScheduler() = default;
  void step();
  int64_t last_epoch() const { return epoch_; }
  // "StepLR", "CosineAnnealingLR", "WarmupCosineLR": what a checkpoint records to refuse another schedule's state.
  virtual const char* name() const = 0;

  LRSchedulerState state_dict() const;
  // Throws braid::Error naming what does not fit (group count, an option's name or value, a negative epoch)
  // before changing anything.
  void load_state_dict(const LRSchedulerState& state);
  void check_state_dict(const LRSchedulerState& state) const;

 protected:
  // The learning rate of a group whose base lr is `base_lr`, at `epoch`.
  virtual double lr_at(int64_t epoch, double base_lr) const = 0;
  // Sets every group's lr to its value at the current epoch.
  void apply();
  virtual std::map<std::string, double> options() const = 0;
  // Throws as the constructor does for invalid values; the names are already known to match.
  virtual void check_options(const std::map<std::string, double>& options) const = 0;
  virtual void set_options(const std::map<std::string, double>& options) = 0;

  Optimizer& optimizer_;
  std::vector<double> base_lrs_;
  int64_t epoch_ = 0;
};

// lr = base_lr * gamma^(epoch / step_size)
class StepLR : public LRScheduler {
 public:
  StepLR(Optimizer& optimizer, int64_t step_size, double gamma = 0.1);
  const char* name() const override { return "StepLR"; }

 protected:
  double lr_at(int64_t epoch, double base_lr) const override;
  std::map<std::string, double> options() const override;
  void check_options(const std::map<std::string, double>& options) const override;
  void set_options(const std::map<std::string, double>& options) override;

 private:
  int64_t step_size_;
  double gamma_;
};

// lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / t_max)) / 2
class CosineAnnealingLR : public LRScheduler {
 public:
  CosineAnnealingLR(Optimizer& optimizer, int64_t t_max, double eta_min = 0);
  const char* name() const override { return "CosineAnnealingLR"; }

 protected:
  double lr_at(int64_t epoch, double base_lr) const override;
  std::map<std::string, double> options() const override;
  void check_options(const std::map<std::string, double>& options) const override;
  void set_options(const std::map<std::string, double>& options) override;

 private:
  int64_t t_max_;
  double eta_min_;
};

// GPT training's schedule, stepped once per optimizer step (step = 0 is the first):
//   step < warmup_steps:           lr = base_lr * (step + 1) / warmup_steps
//   warmup_steps <= step <= total: lr = min_lr + (base_lr - min_lr) * (1 + cos(pi * (step - warmup_steps) /
//                                       (total_steps - warmup_steps))) / 2
//   step > total_steps:            lr = min_lr
// The constructor sets the optimizer's lr to step 0's, so the first step is already warmed up by 1/warmup_steps.
class WarmupCosineLR : public LRScheduler {
 public:
  WarmupCosineLR(Optimizer& optimizer, int64_t warmup_steps, int64_t total_steps, double min_lr = 0);
  const char* name() const override { return "WarmupCosineLR"; }

 protected:
  double lr_at(int64_t epoch, double base_lr) const override;
  std::map<std::string, double> options() const override;
  void check_options(const std::map<std::string, double>& options) const override;
  void set_options(const std::map<std::string, double>& options) override;

 private:
  int64_t warmup_steps_;
  int64_t total_steps_;
  double min_lr_;
};

}  // namespace braid::optim
